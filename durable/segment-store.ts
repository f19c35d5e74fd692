/**
 * The segment store: the one module that calls the R2 bucket (docs/architecture.md §4). A segment
 * is an immutable R2 object holding pages back to back, one per slot, under its object's prefix
 * `{object}/segments/`. Its key is used once and never rewritten (R2 takes about one write per
 * second per key), so a page read from it can never be stale. The flusher and the compactor put
 * segments, reads and the compactor read ranges of slots, the sweeper lists and deletes: all
 * through here, so the key format, the bucket and R2's limits are stated once.
 */
import { KEYS_PER_DELETE } from "./r2-bounds";

/** A segment object as a list of the bucket shows it. */
export interface ListedSegment {
  key: string;
  uploaded: Date;
}

export class SegmentStore {
  constructor(
    /** Replaceable so tests can run the same scenarios against a failing or slow bucket. */
    public bucket: R2Bucket,
  ) {}

  /**
   * A key never used before for a segment of `objectName`, ordered by `seqno` (the seqno the
   * segment's pages were read at), then made unique.
   */
  newKey(objectName: string, seqno: number): string {
    return `${prefixOf(objectName)}${seqno.toString().padStart(16, "0")}-${crypto.randomUUID()}`;
  }

  /**
   * Puts a segment under a key never used before. If the put fails, the key is deleted, best
   * effort: a put that failed after writing would leave an object nothing points at.
   */
  async put(key: string, body: Uint8Array): Promise<void> {
    try {
      await this.bucket.put(key, body);
    } catch (error) {
      void this.discard(key);
      throw error;
    }
  }

  /** Pages [slot, slot + count) of a segment, in one ranged R2 read. */
  async readSlots(key: string, slot: number, count: number, pageSize: number): Promise<Uint8Array> {
    const object = await this.bucket.get(key, {
      range: { offset: slot * pageSize, length: count * pageSize },
    });
    if (!object) throw new Error(`segment ${key} is missing from R2`);
    return new Uint8Array(await object.arrayBuffer());
  }

  /** Deletes segment objects, at most KEYS_PER_DELETE keys per call (R2's limit). */
  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += KEYS_PER_DELETE) {
      await this.bucket.delete(keys.slice(i, i + KEYS_PER_DELETE));
    }
  }

  /**
   * Deletes a segment nothing will point at (its put failed, or its object was destroyed while it
   * was written), best effort: it never rejects, and the orphan scan deletes what it misses.
   */
  discard(key: string): Promise<void> {
    return this.bucket.delete(key).catch(() => {});
  }

  /**
   * One page of `objectName`'s segments, at most `limit` keys from `cursor` on; `cursor` in the
   * answer is where the next page starts, undefined after the last.
   */
  async list(
    objectName: string,
    cursor: string | undefined,
    limit: number,
  ): Promise<{ segments: ListedSegment[]; cursor: string | undefined }> {
    const listed = await this.bucket.list({ prefix: prefixOf(objectName), cursor, limit });
    return {
      segments: listed.objects.map(({ key, uploaded }) => ({ key, uploaded })),
      cursor: listed.truncated ? listed.cursor : undefined,
    };
  }
}

/** Where an object's segments live in the shared bucket: each object has a prefix of its own. */
function prefixOf(objectName: string): string {
  return `${objectName}/segments/`;
}
