/**
 * `GET /v1/objects`: the directory (schema/directory.ts), listed from R2 by prefix, a page at a
 * time. The Worker lists it itself: no Durable Object sees every listing or every write. A token
 * sees only the names its pattern covers: its prefix narrows the listing, and an exact name is
 * the one entry it may see.
 */
import type { Context } from "hono";
import { DIRECTORY_PREFIX, entryOf, grantCovers, type DirectoryEntry, type Grant } from "../schema";
import type { ObjectListBody } from "../schema/http-api";
import type { AppEnv } from "./app-env";

const DEFAULT_LIMIT = 100;

export interface ListQuery {
  prefix?: string;
  cursor?: string;
  limit?: number;
}

export async function listObjects(c: Context<AppEnv>, query: ListQuery): Promise<ObjectListBody> {
  const prefix = scopedPrefix(query.prefix ?? "", c.get("grant"));
  if (prefix === null) return { objects: [], cursor: null };
  const listed = await c.env.DIRECTORY.list({
    prefix: `${DIRECTORY_PREFIX}${prefix}`,
    cursor: query.cursor,
    limit: query.limit ?? DEFAULT_LIMIT,
    include: ["customMetadata"],
  });
  const grant = c.get("grant");
  const objects = listed.objects
    .map((object) => entryOf(object.key, object.customMetadata))
    .filter((entry): entry is DirectoryEntry => entry !== null && grantCovers(grant, entry.object));
  return { objects, cursor: listed.truncated ? listed.cursor : null };
}

/**
 * The prefix to list: the one asked, narrowed to the token's pattern; null when they share no
 * name. (An exact-name token lists with its name as prefix and keeps that one entry.)
 *
 * @example scopedPrefix("tenant", { object: "tenant-a.*", ... }) // "tenant-a."
 */
function scopedPrefix(asked: string, grant: Grant): string | null {
  const covered = grant.object.endsWith("*") ? grant.object.slice(0, -1) : grant.object;
  if (asked.startsWith(covered)) return asked;
  if (covered.startsWith(asked)) return covered;
  return null;
}
