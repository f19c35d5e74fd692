/**
 * Lists passed to SQLite as one JSON value must stay far below the platform's 2 MB per value
 * (docs/limits.md): a list of page or segment entries is cut into chunks of at most
 * `SQL_LIST_ITEMS`, one statement each, inside the caller's transaction.
 */

/**
 * Entries per JSON list bound to one statement. The widest entry is a segment key (about 100
 * bytes), so a chunk is at most about 200 KB, a tenth of the limit.
 */
const SQL_LIST_ITEMS = 2048;

/**
 * The list in consecutive chunks of at most `size` entries (none for an empty list).
 *
 * @example for (const part of inChunks(keys)) sql.exec(`… json_each(?)`, JSON.stringify(part));
 */
export function* inChunks<T>(list: readonly T[], size = SQL_LIST_ITEMS): Generator<T[]> {
  for (let i = 0; i < list.length; i += size) yield list.slice(i, i + size);
}
