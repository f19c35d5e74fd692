/**
 * The page store of docs/architecture.md §4: returned pages go into the SQLite journal (durable in
 * milliseconds); the flusher packs them into immutable R2 segments and points the page index at
 * them. Reads look in the journal first, then the segment, else the page was never written.
 *
 * Storage has three owners, each alone writing its part: the journal (`journal` rows and the
 * durability barrier), the segment index (`pages` and `segments`) and the segment store (the R2
 * bucket). This module plans and runs reads over them, and is what the rest of the object asks of
 * storage; the flusher, the compactor and the sweeper work on the owners directly.
 */
import type { PageSpan } from "../schema";
import type { ByteBudget } from "./byte-budget";
import { Journal } from "./journal";
import type { Meta } from "./meta";
import type { SegmentCache } from "./segment-cache";
import { SegmentIndex } from "./segment-index";
import { SegmentStore } from "./segment-store";
import type { Spools } from "./spools";

/** The owners of the object's stored pages (see above). */
export interface PageOwners {
  journal: Journal;
  index: SegmentIndex;
  segments: SegmentStore;
}

/**
 * Where one page of a read comes from, decided in seqno order before any I/O: a journal page
 * copied into memory (small reads) or into the read's spool in SQLite (large ones, so a 64 MiB
 * read of unflushed pages never sits in memory), or a slot of an R2 segment.
 */
type PageSource =
  | { page: number; journal: Uint8Array }
  | { page: number; spooled: true }
  | { page: number; segment: string; slot: number; keep: number | null };

/** Journal bytes a read keeps in memory; a read over more spools them in SQLite. */
const IN_MEMORY_JOURNAL_BYTES = 1024 * 1024;

/** Ranged R2 reads one read runs at once (and so about that many segments' bytes in memory). */
const PARALLEL_GETS = 4;

/**
 * A read's sources, fixed at its seqno; segments are immutable, so reading later is safe. The
 * segments it names stay in R2 until `finishRead`, even if every page in them is superseded.
 */
export interface ReadPlan {
  span: PageSpan;
  sources: PageSource[];
  /** The segments this plan holds in R2 (emptied by `finishRead`; none for a slice). */
  segments: string[];
  /** The spool holding its journal pages when they were too many for memory, else null. */
  spool: number | null;
}

export class PageStore {
  readonly owners: PageOwners;

  constructor(
    sql: SqlStorage,
    meta: Meta,
    private readonly spools: Spools,
    bucket: R2Bucket,
    /** Segment pages read lately (immutable segments: no invalidation); replaceable in tests. */
    public cache: SegmentCache,
    /** Page bytes the isolate's requests may hold at once (shared by its objects). */
    readonly budget: ByteBudget,
  ) {
    this.owners = {
      journal: new Journal(sql, meta),
      index: new SegmentIndex(sql),
      segments: new SegmentStore(bucket),
    };
  }

  /** Journals the pages of a dirty data_return (durable/journal.ts). */
  journal(firstPage: number, pageSize: number, data: Uint8Array, seqno: number): void {
    this.owners.journal.write(firstPage, pageSize, data, seqno);
  }

  /** Journals a spooled body (an HTTP `PUT`) as pages `firstPage`, `firstPage + 1`, … */
  journalSpool(spool: number, firstPage: number, pages: number, seqno: number): void {
    this.owners.journal.writeSpool(spool, firstPage, pages, seqno);
  }

  /**
   * Applies an atomic group's staged pages with rowids in (after, through] as versions of
   * `seqno` (durable/journal.ts `writeStaged`); returns the end of the highest page applied.
   */
  journalStaged(
    kernel: string,
    group: number,
    after: number,
    through: number,
    seqno: number,
  ): number {
    return this.owners.journal.writeStaged(kernel, group, after, through, seqno);
  }

  /**
   * Shrinks the object's pages to `size` bytes (docs/protocol.md §13): pages wholly past it are
   * dropped from the journal and the index (their segments are freed by the sweep and
   * compaction), and the bytes of the last page past it become zeros, as a version of `seqno`.
   * Returns the first page dropped.
   */
  truncate(size: number, pageSize: number, seqno: number): number {
    const { journal, index } = this.owners;
    const firstDropped = Math.ceil(size / pageSize);
    journal.dropFrom(firstDropped);
    index.dropFrom(firstDropped);
    const keep = size % pageSize;
    if (keep !== 0) {
      const page = firstDropped - 1;
      // A page only in R2 cannot be read here (no await in a step): the index remembers the cut.
      if (!journal.zeroTail(page, keep, seqno)) index.cutTail(page, keep);
    }
    return firstDropped;
  }

  /** Pages in the journal now. */
  journalPages(): number {
    return this.owners.journal.pages();
  }

  /** A transaction rolled back, or the tables were cleared: count the journal again. */
  forgetCounts(): void {
    this.owners.journal.forgetCounts();
  }

  /** Pages ever written and kept: in the journal, in R2, or both. */
  storedPages(): number {
    return this.owners.journal.storedPages();
  }

  /**
   * True when no page of the span has a version of `seqno` or below still outside R2: the barrier a
   * SYNCHRONOUS synchronize waits on (docs/protocol.md §6.4).
   */
  isDurableUpTo(span: PageSpan, seqno: number): boolean {
    return this.owners.journal.isDurableUpTo(span, seqno);
  }

  /** Every segment's key (for deleting them all when the object is destroyed). */
  segmentKeys(): string[] {
    return this.owners.index.allKeys();
  }

  /** Deletes segment objects from R2 (a destroyed object's). */
  deleteSegments(keys: string[]): Promise<void> {
    return this.owners.segments.delete(keys);
  }

  /**
   * Fixes where each written page of the span is, as of now (the read's seqno). Journal pages
   * are copied: into memory when they are few, else into a spool in SQLite.
   */
  planRead(span: PageSpan, pageSize: number): ReadPlan {
    const { journal, index } = this.owners;
    const sources = new Map<number, PageSource>();
    for (const location of index.locate(span)) sources.set(location.page, location);
    const journaled = journal.pagesIn(span);
    let spool: number | null = null;
    if (journaled * pageSize <= IN_MEMORY_JOURNAL_BYTES) {
      for (const row of journal.rowsIn(span)) {
        sources.set(row.page, { page: row.page, journal: new Uint8Array(row.data) });
      }
    } else if (journaled > 0) {
      spool = this.spools.open();
      for (const page of this.spools.copyJournal(spool, span)) {
        sources.set(page, { page, spooled: true });
      }
    }
    const segments = new Set<string>();
    for (const source of sources.values()) if ("segment" in source) segments.add(source.segment);
    index.hold([...segments]);
    return {
      span,
      sources: [...sources.values()].sort((a, b) => a.page - b.page),
      segments: [...segments],
      spool,
    };
  }

  /** The read of `plan` is over (done, failed or abandoned): its segments may go. Idempotent. */
  finishRead(plan: ReadPlan): void {
    this.owners.index.release(plan.segments);
    plan.segments = [];
    if (plan.spool !== null) this.spools.drop(plan.spool);
    plan.spool = null;
  }

  /** The part of a plan that covers pages [first, end), for reading a long range in pieces. */
  slicePlan(plan: ReadPlan, first: number, end: number): ReadPlan {
    return {
      span: { first, end },
      sources: plan.sources.filter((source) => source.page >= first && source.page < end),
      segments: [],
      spool: plan.spool,
    };
  }

  /**
   * The ranged R2 reads that reading `plan` in pieces of `piecePages` pages makes at most: one
   * per segment per piece (the cache can only make it fewer).
   */
  r2ReadsFor(plan: ReadPlan, piecePages: number): number {
    const seen = new Set<string>();
    for (const source of plan.sources) {
      if ("segment" in source) {
        seen.add(`${Math.floor((source.page - plan.span.first) / piecePages)} ${source.segment}`);
      }
    }
    return seen.size;
  }

  /**
   * Reads a planned range: journal pages from memory or the spool, segment pages from the cache
   * or from R2 with one ranged read per segment (covering the slots needed, whatever their
   * order, so a fragmented range costs a read per segment, not per page); never-written pages
   * stay zero. What R2 returned is cached unless `fillCache` is false (a bulk read passing
   * through).
   */
  async read(plan: ReadPlan, pageSize: number, { fillCache = true } = {}): Promise<Uint8Array> {
    const out = new Uint8Array((plan.span.end - plan.span.first) * pageSize);
    const at = (page: number) => (page - plan.span.first) * pageSize;
    const wanted = new Map<string, { page: number; slot: number; keep: number | null }[]>();
    let spooled = 0;
    for (const source of plan.sources) {
      if ("journal" in source) {
        out.set(source.journal, at(source.page));
      } else if ("spooled" in source) {
        spooled++;
      } else {
        const cached = this.cache.get(source.segment, source.slot);
        if (cached) {
          out.set(cached, at(source.page));
          cutTail(out, source, at(source.page), pageSize);
        } else {
          const pages = wanted.get(source.segment);
          if (pages) pages.push(source);
          else wanted.set(source.segment, [source]);
        }
      }
    }
    if (spooled > 0) {
      const rows =
        plan.spool === null ? [] : this.spools.read(plan.spool, plan.span.first, plan.span.end);
      // Only a DELETE while the read streamed takes a spool away: fail rather than send zeros.
      if (rows.length !== spooled)
        throw new Error("the read's spooled pages are gone (object deleted)");
      for (const row of rows) out.set(new Uint8Array(row.data), at(row.part));
    }
    const segments = [...wanted.entries()];
    const readOne = async ([segment, pages]: [
      string,
      { page: number; slot: number; keep: number | null }[],
    ]) => {
      let first = Infinity;
      let end = 0;
      for (const { slot } of pages) {
        first = Math.min(first, slot);
        end = Math.max(end, slot + 1);
      }
      const release = await this.budget.take((end - first) * pageSize);
      try {
        const bytes = await this.owners.segments.readSlots(segment, first, end - first, pageSize);
        for (const source of pages) {
          const from = (source.slot - first) * pageSize;
          out.set(bytes.subarray(from, from + pageSize), at(source.page));
          cutTail(out, source, at(source.page), pageSize);
        }
        if (fillCache) this.cache.keep(segment, first, bytes, pageSize);
      } finally {
        release();
      }
    };
    const workers = Array.from({ length: Math.min(PARALLEL_GETS, segments.length) }, async () => {
      for (let next = segments.shift(); next; next = segments.shift()) await readOne(next);
    });
    await Promise.all(workers);
    return out;
  }
}

/** Zeroes what a shrink cut off a segment page just copied to `out` at `at` (see `truncate`). */
function cutTail(
  out: Uint8Array,
  source: { keep: number | null },
  at: number,
  pageSize: number,
): void {
  if (source.keep !== null) out.fill(0, at + source.keep, at + pageSize);
}
