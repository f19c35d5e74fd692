/**
 * This object's entry in the directory (schema/directory.ts): written to R2 when the object's
 * page size is fixed (the creating request waits for it, so a created object is listed once its
 * creator hears back), refreshed after a flush that changed its page count, at most once a
 * minute but at once for its first pages (so `put` then `ls` shows them), and deleted with the
 * object before DELETE answers. Through its own R2 binding (`DIRECTORY`, the same bucket), so
 * the page store's R2 figures stay its own.
 */
import { manifestKey, manifestMetadata, type DirectoryEntry } from "../schema";
import type { Meta } from "./meta";

/** The least time between two refreshes: a busy object writes its manifest once a minute. */
const MANIFEST_REFRESH_MS = 60_000;

export class Manifest {
  /** A write under way: a DELETE waits for it, so it cannot land after the deletion. */
  private writing: Promise<void> = Promise.resolve();
  /** While a DELETE removes the entry, nothing writes it again. */
  private suspended = false;

  constructor(
    private readonly bucket: R2Bucket,
    private readonly meta: Meta,
  ) {}

  /** The page size was fixed now: the object exists from this moment (kept for `created`). */
  created(): void {
    this.meta.set("created", new Date().toISOString());
    this.meta.set("manifest_at", 0);
  }

  /**
   * Whether the entry is due, the object holding `pages` now: never written, or its page count
   * changed since and either it had none or a minute has passed.
   */
  due(pages: number, now = Date.now()): boolean {
    const at = this.meta.get<number>("manifest_at");
    if (at === null || at === 0) return true;
    const published = this.meta.get<number>("manifest_pages") ?? 0;
    if (pages === published) return false;
    return published === 0 || now - at >= MANIFEST_REFRESH_MS;
  }

  /** Never written yet (a fresh object, or one made before the directory). */
  missing(): boolean {
    const at = this.meta.get<number>("manifest_at");
    return at === null || at === 0;
  }

  /** Writes the entry; the returned promise settles when R2 has it (failures are thrown). */
  publish(entry: Omit<DirectoryEntry, "created" | "last_activity">): Promise<void> {
    if (this.suspended) return Promise.resolve();
    const now = new Date();
    const created = this.meta.get<string>("created") ?? now.toISOString();
    if (this.meta.get<string>("created") === null) this.meta.set("created", created);
    this.meta.set("manifest_at", now.getTime());
    this.meta.set("manifest_pages", entry.pages);
    const put = this.writing
      .catch(() => undefined)
      .then(async () => {
        await this.bucket.put(manifestKey(entry.object), null, {
          customMetadata: manifestMetadata({
            ...entry,
            created,
            last_activity: now.toISOString(),
          }),
        });
      });
    this.writing = put;
    return put;
  }

  /**
   * The object is being destroyed: its entry goes, after any write under way, and none is
   * written until `resume`. Marked missing first, so an object that dies before its tables are
   * gone writes its entry again at its next start.
   */
  async remove(object: string): Promise<void> {
    this.suspended = true;
    this.meta.set("manifest_at", 0);
    await this.writing.catch(() => undefined);
    await this.bucket.delete(manifestKey(object));
  }

  /** The destroyed object's tables are fresh: its next creation writes an entry again. */
  resume(): void {
    this.suspended = false;
  }
}
