/**
 * The paths of the HTTP API (docs/protocol.md §9), without zod: the client bundle takes them from
 * here, and the API definition (schema/http-api.ts) builds its routes on them, so a path is
 * spelled once for both sides.
 */

/** Every path of the API, in OpenAPI's `{param}` form. */
export const HTTP_PATHS = {
  object: "/v1/objects/{name}",
  pages: "/v1/objects/{name}/pages",
  synchronize: "/v1/objects/{name}/synchronize",
  syncs: "/v1/objects/{name}/syncs",
  control: "/v1/objects/{name}/control",
  events: "/v1/objects/{name}/events",
  map: "/v1/objects/{name}/map",
} as const;

/** The directory of objects (schema/directory.ts): no object name in it. */
export const DIRECTORY_PATH = "/v1/objects";

export type HttpPath = (typeof HTTP_PATHS)[keyof typeof HTTP_PATHS];

/**
 * Whether `pathname` is `path` with some object name in it.
 *
 * @example isPathOf(HTTP_PATHS.control, "/v1/objects/db/control") // true
 */
export function isPathOf(path: HttpPath, pathname: string): boolean {
  const [before, after] = path.split("{name}") as [string, string];
  if (!pathname.startsWith(before) || !pathname.endsWith(after)) return false;
  const name = pathname.slice(before.length, pathname.length - after.length);
  return name.length > 0 && !name.includes("/");
}

/**
 * The path of one object's operation, relative (no leading slash) so that it resolves under a
 * base URL that has a path of its own, with `query` appended (entries left undefined are left out).
 *
 * @example objectPath(HTTP_PATHS.pages, "db", { offset: 0, length: 4096 })
 * // "v1/objects/db/pages?offset=0&length=4096"
 */
export function objectPath(
  path: HttpPath,
  name: string,
  query: Record<string, string | number | undefined> = {},
): string {
  const filled = path.slice(1).replace("{name}", encodeURIComponent(name));
  const pairs = Object.entries(query).filter(
    (entry): entry is [string, string | number] => entry[1] !== undefined,
  );
  if (pairs.length === 0) return filled;
  return `${filled}?${pairs.map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join("&")}`;
}
