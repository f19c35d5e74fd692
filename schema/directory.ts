/**
 * The object directory (docs/protocol.md §9, `GET /v1/objects`): each object keeps a small
 * manifest in R2, written by its Durable Object when its page size is fixed and refreshed with
 * its flushes, deleted with it, and the Worker lists the manifests by prefix. No single object
 * sees every write, so listing scales with R2, not with one Durable Object (docs/dashboard.md).
 * This module is the one spelling of a manifest's key and metadata, for both sides.
 */

/**
 * Where manifests live in the bucket. `~` is not allowed in object names, so no object's own
 * keys (`{name}/segments/…`) can fall under it.
 */
export const DIRECTORY_PREFIX = "~directory/";

/** One object as the directory lists it. */
export interface DirectoryEntry {
  object: string;
  page_size: number;
  coherent: boolean;
  /** Pages stored, and their bytes, as of `last_activity`. */
  pages: number;
  bytes: number;
  /** When the page size was fixed (ISO 8601). */
  created: string;
  /** When the manifest was last refreshed by a write reaching R2, or by the object's creation. */
  last_activity: string;
}

export function manifestKey(object: string): string {
  return `${DIRECTORY_PREFIX}${object}`;
}

/** R2 custom metadata holds strings only. */
export function manifestMetadata(entry: DirectoryEntry): Record<string, string> {
  return {
    page_size: String(entry.page_size),
    coherent: entry.coherent ? "1" : "0",
    pages: String(entry.pages),
    bytes: String(entry.bytes),
    created: entry.created,
    last_activity: entry.last_activity,
  };
}

/** The entry of a listed manifest (its key and metadata), or null for a key that is not one. */
export function entryOf(
  key: string,
  metadata: Record<string, string> | undefined,
): DirectoryEntry | null {
  if (!key.startsWith(DIRECTORY_PREFIX) || !metadata) return null;
  return {
    object: key.slice(DIRECTORY_PREFIX.length),
    page_size: Number(metadata.page_size),
    coherent: metadata.coherent === "1",
    pages: Number(metadata.pages),
    bytes: Number(metadata.bytes),
    created: metadata.created ?? "",
    last_activity: metadata.last_activity ?? "",
  };
}
