/**
 * The object's size in bytes (docs/protocol.md §13), one value in `meta`. Writes past it raise
 * it, which a batch of sequential returns does at every message: the value is kept in memory and
 * written once at the end of each transaction (`save`, called by the Pager's `transact`) instead
 * of once per return; a transaction that rolls back forgets it, to read it again.
 */
import type { Meta } from "./meta";

export class ObjectSize {
  /** The size as of now; undefined: not read yet (or rolled back). */
  private value: number | undefined;
  private unsaved = false;

  constructor(private readonly meta: Meta) {}

  get(): number {
    this.value ??= this.meta.get<number>("size") ?? 0;
    return this.value;
  }

  /** A write ended at byte `end`: the size is at least that now. */
  raiseTo(end: number): void {
    if (end > this.get()) this.set(end);
  }

  set(size: number): void {
    this.value = size;
    this.unsaved = true;
  }

  /** Writes a changed size; runs last inside every transaction, so it commits with its cause. */
  save(): void {
    if (!this.unsaved) return;
    this.meta.set("size", this.value!);
    this.unsaved = false;
  }

  /** The transaction rolled back, or the tables were cleared: read it again. */
  forget(): void {
    this.value = undefined;
    this.unsaved = false;
  }
}
