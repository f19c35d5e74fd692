/**
 * Range rules that depend on the object (docs/protocol.md §1, docs/protocol.md §8): alignment to its page size,
 * `max_transfer` per frame, `max_size` overall, and the outward rounding of docs/protocol.md §6.2.
 */
import { KERN_INVALID_ADDRESS } from "./constants";
import { ProtocolError, invalidField } from "./protocol-error";

export interface ObjectGeometry {
  pageSize: number;
  maxTransfer: number;
  maxSize: number;
}

/** A half-open run of page numbers: pages `first` … `end - 1`. */
export interface PageSpan {
  first: number;
  end: number;
}

/** `offset + length` within `max_size`, else `KERN_INVALID_ADDRESS`. */
export function checkWithinObject(offset: number, length: number, maxSize: number): void {
  if (offset + length > maxSize) {
    throw new ProtocolError(
      KERN_INVALID_ADDRESS,
      "out_of_range",
      `offset + length (${offset + length}) exceeds max_size (${maxSize})`,
    );
  }
}

/** An object size (docs/protocol.md §13) within `max_size`, else `KERN_INVALID_ADDRESS`. */
export function checkSize(size: number, maxSize: number): void {
  if (size > maxSize) {
    throw new ProtocolError(
      KERN_INVALID_ADDRESS,
      "out_of_range",
      `size (${size}) exceeds max_size (${maxSize})`,
    );
  }
}

/**
 * A range of whole pages that one frame may carry: aligned, a positive page multiple, at most
 * `max_transfer`, within `max_size`.
 *
 * @example const span = checkPageRange(msg.offset, msg.length, geometry);
 */
export function checkPageRange(offset: number, length: number, geometry: ObjectGeometry): PageSpan {
  const { pageSize, maxTransfer, maxSize } = geometry;
  if (offset % pageSize !== 0)
    invalidFieldThrow("offset", `must be a multiple of page_size (${pageSize})`);
  if (length === 0 || length % pageSize !== 0) {
    invalidFieldThrow("length", `must be a positive multiple of page_size (${pageSize})`);
  }
  if (length > maxTransfer)
    invalidFieldThrow("length", `must not exceed max_transfer (${maxTransfer})`);
  checkWithinObject(offset, length, maxSize);
  return { first: offset / pageSize, end: (offset + length) / pageSize };
}

/** The pages a byte range touches, rounded outward (docs/protocol.md §6.2). */
export function pageSpanOf(offset: number, length: number, pageSize: number): PageSpan {
  const first = Math.floor(offset / pageSize);
  const end = length === 0 ? first : Math.ceil((offset + length) / pageSize);
  return { first, end };
}

export function spansOverlap(a: PageSpan, b: PageSpan): boolean {
  return a.first < b.end && b.first < a.end;
}

function invalidFieldThrow(field: string, rule: string): never {
  throw invalidField(field, rule);
}
