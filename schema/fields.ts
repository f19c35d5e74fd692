/**
 * Field rules shared by every message family: each reads one field of a decoded message and
 * throws `invalidField` naming the field and its rule.
 */
import { MAX_OPEN_GROUPS, MAX_PAGE_SIZE, MIN_PAGE_SIZE } from "./constants";
import { invalidField } from "./protocol-error";

type Fields = Record<string, unknown>;

/** A non-negative safe integer (offsets, lengths, mids). */
export function readCount(fields: Fields, name: string): number {
  const value = fields[name];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw invalidField(name, "must be a non-negative safe integer");
  }
  return value;
}

/** A positive safe integer (message ids, lock ids). */
export function readPositive(fields: Fields, name: string): number {
  const value = fields[name];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw invalidField(name, "must be a positive safe integer");
  }
  return value;
}

/** A list of atomic group numbers (docs/protocol.md §12): positive, at most MAX_OPEN_GROUPS. */
export function readGroups(fields: Fields, name: string): number[] {
  const value = fields[name];
  if (
    !Array.isArray(value) ||
    value.length > MAX_OPEN_GROUPS ||
    !value.every((group) => typeof group === "number" && Number.isSafeInteger(group) && group > 0)
  ) {
    throw invalidField(
      name,
      `must be an array of at most ${MAX_OPEN_GROUPS} positive safe integers (group numbers)`,
    );
  }
  return value as number[];
}

export function readBoolean(fields: Fields, name: string): boolean {
  const value = fields[name];
  if (typeof value !== "boolean") throw invalidField(name, "must be true or false");
  return value;
}

/** `VM_PROT_*` bits: 0 to 7. */
export function readProtection(fields: Fields, name: string): number {
  const value = fields[name];
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 7) {
    throw invalidField(name, "must be VM_PROT_* bits, an integer from 0 to 7");
  }
  return value;
}

/** A power of two from 512 to 65536 (docs/protocol.md §1). */
export function readPageSize(fields: Fields, name = "page_size"): number {
  const value = fields[name];
  if (!isPageSize(value)) {
    throw invalidField(name, `must be a power of two from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE}`);
  }
  return value;
}

export function isPageSize(value: unknown): value is number {
  return (
    typeof value === "number" &&
    Number.isInteger(value) &&
    value >= MIN_PAGE_SIZE &&
    value <= MAX_PAGE_SIZE &&
    (value & (value - 1)) === 0
  );
}
