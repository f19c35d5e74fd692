/**
 * Frames for the fuzz tests (test/fuzz.test.ts): well-formed messages of every type, broken ones
 * (fields deleted, retyped, out of range, misaligned), random bytes and text, broken JSON,
 * oversized headers and lying binary length prefixes, messages of atomic groups (docs/protocol.md §12) and
 * `open_groups` with group numbers valid and not; and for kernels that asked for batches
 * (docs/protocol.md §11), batch frames and batches that cannot be parsed. Drawn from a seeded
 * PRNG, so a seed replays exactly. Whether a frame is an error, and which, is for the caller to
 * judge.
 */
import { seededRandom } from "../../tools/random";
import { binaryFrame } from "./frames";
import { MESSAGE_TYPES, STATE_CHANGING } from "./message-rules";

/** The object's geometry and limits, which decide what the frames aim at. */
export interface FrameShape {
  pageSize: number;
  /** Offsets are drawn from pages 0 … touchedPages - 1. */
  touchedPages: number;
  maxSize: number;
  maxTransfer: number;
  maxHeaderBytes: number;
  /** Share of frames over MAX_HEADER_BYTES (each some 64 KiB); 0.02 unless told. */
  oversizedRate?: number;
}

/** The seeded PRNG of tools/random.ts, with helpers. */
export class Rng {
  readonly float: () => number;
  constructor(seed: number) {
    this.float = seededRandom(seed);
  }
  /** 0 … n - 1 */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(256));
  }
}

/** What the object knows of the socket a frame goes to, as far as it decides error or not. */
export interface Target {
  initialized: boolean;
  /** Highest state-changing id applied for the kernel: a message at or below it is a resend. */
  lastId: number;
  /** Highest outbox mid sent to the kernel. */
  lastMid: number;
}

/** A JSON number literal written as is, for values JSON.stringify cannot produce (1e999, -0). */
const raw = (literal: string) => `@@RAW:${literal}@@`;
export function serialize(header: Record<string, unknown>): string {
  return JSON.stringify(header).replace(/"@@RAW:([^@"]*)@@"/g, "$1");
}

const NASTY_VALUES: unknown[] = [
  0,
  -1,
  1.5,
  3,
  0x80,
  1000,
  2 ** 31,
  2 ** 32,
  2 ** 32 + 2,
  2 ** 40 + 4,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 64,
  1e300,
  -1e300,
  null,
  true,
  false,
  "",
  "1",
  "4096",
  "NaN",
  [],
  [1],
  {},
  { nested: { deeper: [null, { id: 1 }] } },
  raw("1e999"),
  raw("-1e999"),
  raw("-0"),
  raw("9007199254740993"),
  raw("4294967298"),
  raw("1E400"),
  raw("0.0"),
  raw("4096.0"),
  raw("1e2"),
];
const JUNK_TYPES: unknown[] = [
  "memory_object_bogus",
  "",
  "MEMORY_OBJECT_INIT",
  "__proto__",
  "toString",
  "constructor",
  "ack",
  "memory_object_ready",
  "error",
  7,
  null,
  ["received"],
  { type: "received" },
];

/** A well-formed message of a random type; state-changing ones get an id above `lastId`. */
function template(rng: Rng, target: Target, shape: FrameShape): Record<string, unknown> {
  const type = rng.pick(MESSAGE_TYPES);
  const id = STATE_CHANGING.has(type) ? target.lastId + 1 + rng.int(1000) : 1 + rng.int(10_000);
  const { pageSize } = shape;
  const offset = rng.int(shape.touchedPages) * pageSize;
  const length = (1 + rng.int(4)) * pageSize;
  // Now and then in an atomic group (docs/protocol.md §12), or naming groups it will finish.
  const group = () => (rng.chance(0.15) ? { group: 1 + rng.int(8) } : {});
  switch (type) {
    case "memory_object_init":
      return {
        type,
        id,
        page_size: pageSize,
        received_mid: 0,
        ...(rng.chance(0.1) && { open_groups: [1 + rng.int(8)] }),
      };
    case "memory_object_data_request":
    case "memory_object_data_unlock":
      return { type, id, offset, length, desired_access: rng.int(8) };
    case "memory_object_data_return":
      return {
        type,
        id,
        offset,
        length,
        dirty: rng.chance(0.7),
        kernel_copy: rng.chance(0.3),
        ...group(),
      };
    case "memory_object_synchronize":
      return {
        type,
        id,
        offset,
        length,
        sync_flags: rng.pick([0, 1, 2, 4, 5, 6, 0x48]),
        ...group(),
      };
    case "memory_object_lock_completed":
      return { type, id, lock_id: 1 + rng.int(20), offset, length };
    case "memory_object_terminate":
      return { type, id };
    case "memory_object_set_size":
      return {
        type,
        id,
        size: rng.chance(0.9)
          ? rng.int(shape.touchedPages + 1) * pageSize + rng.int(2)
          : shape.maxSize + rng.pick([1, pageSize]),
        ...group(),
      };
    case "received":
      return { type, id, mid: rng.int(3) };
  }
}

/** Group numbers and `open_groups` lists that break their rules (docs/protocol.md §12), and a few that keep them. */
const GROUP_VALUES: unknown[] = [
  0,
  -1,
  1.5,
  "1",
  null,
  true,
  2 ** 53,
  raw("1e999"),
  raw("-0"),
  raw("1.0"),
  [],
  [0],
  [1, -2],
  [1.5],
  ["1"],
  [null],
  [2 ** 53],
  Array.from({ length: 64 }, (_, i) => i + 1),
  Array.from({ length: 65 }, (_, i) => i + 1),
  { 1: 1 },
  3,
];

type Mutation = (h: Record<string, unknown>, rng: Rng, target: Target, shape: FrameShape) => void;
const MUTATIONS: Mutation[] = [
  (h, rng) => delete h[rng.pick(Object.keys(h))],
  (h, rng) => (h[rng.pick(Object.keys(h))] = rng.pick(NASTY_VALUES)),
  (h, rng) => (h.type = rng.pick(JUNK_TYPES)),
  (h, rng) => (h.id = rng.pick([0, -1, 1.5, "7", null, 2 ** 53, raw("1e999"), raw("-0")])),
  (h, rng, _t, { pageSize }) => {
    if (typeof h.offset === "number") h.offset += 1 + rng.int(pageSize - 1);
  },
  (h, rng, _t, { pageSize, maxTransfer }) =>
    (h.length = rng.pick([0, 1, 100, pageSize + 1, 2 * maxTransfer, 2 ** 53, -pageSize])),
  (h, rng, _t, { pageSize, maxSize }) => {
    // Past max_size: KERN_INVALID_ADDRESS.
    h.offset = maxSize - pageSize * rng.int(2);
    h.length = 2 * pageSize;
  },
  (h, rng) =>
    (h.sync_flags = rng.pick([3, 0x7f, 0x80, 0x100, 2 ** 31, 2 ** 32 + 2, 2 ** 40 + 4, -1, 1.5])),
  (h, rng) => (h.page_size = rng.pick([8192, 1000, 0, 512, 65536, 2 ** 32, 4097])),
  (h, rng, target) => (h[rng.pick(["mid", "received_mid"])] = target.lastMid + 1000 + rng.int(1e6)),
  (h, rng) => (h[rng.pick(["dirty", "kernel_copy"])] = rng.pick(["yes", 1, null, 0])),
  (h, rng) => (h[`junk${rng.int(5)}`] = rng.pick(NASTY_VALUES)),
  (h, rng) => (h[rng.pick(["group", "open_groups"])] = rng.pick(GROUP_VALUES)),
  (h, rng, _t, { pageSize, maxSize }) =>
    (h.size = rng.pick([maxSize, maxSize + 1, maxSize + pageSize, 2 ** 53, -1, 1.5, "0"])),
];

const TEXT_POOL = [
  ...'{}[]":,0123456789-.eE abcdefghijklmnopqrstuvwxyz_',
  "\u0000",
  "\u001f",
  "\\",
  "\\u",
  "é",
  "€",
  "😀",
  "\ufeff",
  '"type"',
  '"id"',
  "memory_object_",
  "null",
  "true",
];

/** One candidate frame: anything from random bytes to a valid message with one field broken. */
export function candidate(rng: Rng, target: Target, shape: FrameShape): string | Uint8Array {
  const { pageSize, maxHeaderBytes } = shape;
  const oversized = shape.oversizedRate ?? 0.02;
  const roll = rng.float();
  if (roll < 0.07) return rng.bytes(rng.int(40));
  if (roll < 0.14) {
    return Array.from({ length: rng.int(40) }, () => rng.pick(TEXT_POOL)).join("");
  }
  if (roll < 0.18) return rng.pick(["null", "[]", "[1,2]", "42", '"x"', "true", "{}", ""]);
  if (roll < 0.18 + oversized) {
    // Over MAX_HEADER_BYTES: a valid message padded (with ASCII, or with fewer characters than
    // the limit that take more bytes than it in UTF-8), or a prefix claiming a huge header.
    const pad = rng.pick(["x", "€", "😀"]);
    const count = Math.ceil((maxHeaderBytes + 1) / new TextEncoder().encode(pad).byteLength);
    return rng.chance(0.6)
      ? serialize({ ...template(rng, target, shape), pad: pad.repeat(count) })
      : binaryFrame(rng.bytes(8), new Uint8Array(0), maxHeaderBytes + 1 + rng.int(1e6));
  }
  const header = template(rng, target, shape);
  const mutations = rng.chance(0.08) ? 0 : 1 + rng.int(2);
  for (let i = 0; i < mutations; i++) rng.pick(MUTATIONS)(header, rng, target, shape);
  const text = serialize(header);
  if (header.type === "memory_object_data_return" || rng.chance(0.15)) {
    const json = new TextEncoder().encode(text);
    const declared = header.length;
    const payload =
      typeof declared === "number" && declared >= 0 && declared <= 4 * pageSize && rng.chance(0.6)
        ? rng.bytes(declared)
        : rng.bytes(rng.pick([0, 1, pageSize, 2 * pageSize, rng.int(100)]));
    const prefix = rng.chance(0.85)
      ? json.byteLength
      : rng.pick([
          json.byteLength + 1 + rng.int(10),
          Math.max(0, json.byteLength - 1 - rng.int(5)),
        ]);
    return binaryFrame(json, payload, prefix);
  }
  return rng.chance(0.06) ? text.slice(0, rng.int(text.length)) : text;
}

// ---------------------------------------------------------------------------------------------
// Batches (docs/protocol.md §11): frames holding several messages, for kernels that asked.

/** One message of a batch as sent: its JSON text, and its pages in a binary batch. */
export interface BatchPart {
  text: string;
  payload: Uint8Array | null;
}

/** Entries of a batch that are not JSON objects: each its own `bad_json`. */
export const NON_OBJECT_ENTRIES = [
  "7",
  "null",
  '"x"',
  "true",
  "[]",
  "[1]",
  '[{"type":"received"}]',
];

/** Messages whose pages follow them in a binary frame or batch (docs/protocol.md §2). */
const CARRIES_PAGES: ReadonlySet<unknown> = new Set([
  "memory_object_data_return",
  "memory_object_data_supply",
]);

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * A frame drawn for sending alone, as a message of a batch: null when it is no JSON value (or
 * too long for a batch's header). In a binary batch a message that carries pages is followed by
 * exactly its `length` bytes, so those are drawn afresh when the frame's do not match (and a
 * small length allows); in a text batch it has none.
 */
export function batchPart(rng: Rng, data: string | Uint8Array, binary: boolean): BatchPart | null {
  let text: string;
  let payload: Uint8Array | null = null;
  if (typeof data === "string") {
    text = data;
  } else {
    if (data.byteLength < 4) return null;
    const headerLength = new DataView(data.buffer, data.byteOffset).getUint32(0);
    if (headerLength > data.byteLength - 4) return null;
    try {
      text = strict.decode(data.subarray(4, 4 + headerLength));
    } catch {
      return null;
    }
    payload = data.subarray(4 + headerLength);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (text.length > 4000) return null;
  const header = value as Record<string, unknown> | null;
  if (!binary || typeof header !== "object" || header === null || !CARRIES_PAGES.has(header.type)) {
    return { text, payload: null };
  }
  const length = header.length;
  if (typeof length === "number" && Number.isSafeInteger(length) && length >= 0) {
    if (payload?.byteLength === length) return { text, payload };
    if (length <= 16 * 4096) return { text, payload: rng.bytes(length) };
  }
  return { text, payload: payload ?? new Uint8Array(0) };
}

/** A batch frame of `parts`: a JSON array, and for a binary one their pages back to back. */
export function batchOf(parts: readonly BatchPart[], binary: boolean): string | Uint8Array {
  const header = `[${parts.map((part) => part.text).join(",")}]`;
  return binary ? binaryFrame(header, concat(parts.map((p) => p.payload))) : header;
}

function concat(pieces: readonly (Uint8Array | null)[]): Uint8Array {
  const all = new Uint8Array(pieces.reduce((sum, piece) => sum + (piece?.byteLength ?? 0), 0));
  let offset = 0;
  for (const piece of pieces) {
    if (!piece) continue;
    all.set(piece, offset);
    offset += piece.byteLength;
  }
  return all;
}

/** What a malformed batch is made of: the kernel's next id, what it has received, its pages. */
export interface BatchKernel {
  nextId: () => number;
  seenMid: number;
  /** `pages` pages of bytes to write. */
  pattern: (pages: number) => Uint8Array;
}

/**
 * A batch that cannot be parsed, or whose pages pass max_transfer (docs/protocol.md §11): empty,
 * over MAX_BATCH_MESSAGES, payload bytes that do not add up, a message that carries pages with
 * no valid length, a header over MAX_HEADER_BYTES, or data_returns whose pages together pass
 * max_transfer (`huge`: the caller allows a 1 MiB frame).
 */
export function malformedBatch(
  rng: Rng,
  shape: FrameShape,
  kernel: BatchKernel,
  maxMessages: number,
  huge: boolean,
): string | Uint8Array {
  const { pageSize, maxTransfer, maxHeaderBytes } = shape;
  const received = (): BatchPart => ({
    text: JSON.stringify({ type: "received", id: kernel.nextId(), mid: kernel.seenMid }),
    payload: null,
  });
  const dataReturn = (pages: number, length: unknown = pages * pageSize): BatchPart => ({
    text: serialize({
      type: "memory_object_data_return",
      id: kernel.nextId(),
      offset: rng.int(Math.max(1, shape.touchedPages - pages)) * pageSize,
      length,
      dirty: true,
      kernel_copy: false,
    }),
    payload: kernel.pattern(pages),
  });
  switch (huge ? 5 : rng.int(5)) {
    case 0:
      // Empty: with stray bytes after a binary one's header, or none.
      return rng.chance(0.5) ? "[]" : binaryFrame("[]", rng.bytes(rng.int(3) * 7));
    case 1: {
      const parts = Array.from({ length: maxMessages + 1 + rng.int(20) }, received);
      return batchOf(parts, rng.chance(0.2));
    }
    case 2: {
      // Pages that do not add up to the lengths: a byte or a page too many, or too few.
      const parts = [dataReturn(1 + rng.int(3)), received()];
      if (rng.chance(0.5)) parts.push(dataReturn(1));
      const frame = batchOf(parts, true) as Uint8Array;
      return rng.chance(0.5)
        ? binaryFrame(
            frame.subarray(4, 4 + headerLength(frame)),
            concat([frame.subarray(4 + headerLength(frame)), rng.bytes(rng.pick([1, pageSize]))]),
          )
        : frame.subarray(0, frame.byteLength - 1 - rng.int(pageSize));
    }
    case 3: {
      // A data_return whose length cannot split the pages.
      const bad = dataReturn(1, rng.pick([-pageSize, 1.5, "4096", null, raw("1e999")]));
      const parts = rng.chance(0.5) ? [received(), bad] : [bad, received()];
      return batchOf(parts, true);
    }
    case 4: {
      // A header over MAX_HEADER_BYTES.
      const pad = "x".repeat(maxHeaderBytes);
      return batchOf(
        [
          received(),
          { text: JSON.stringify({ type: "received", id: 1, mid: 0, pad }), payload: null },
        ],
        rng.chance(0.3),
      );
    }
    default: {
      // Pages over max_transfer: two returns of half of it and a page more, and whatever else.
      const half = maxTransfer / pageSize / 2 + 1;
      const parts = [dataReturn(half), dataReturn(half)];
      if (rng.chance(0.5)) parts.splice(1, 0, received());
      if (rng.chance(0.3))
        parts.push({ text: '{"type":"memory_object_bogus","id":3}', payload: null });
      return batchOf(parts, true);
    }
  }
}

function headerLength(frame: Uint8Array): number {
  return new DataView(frame.buffer, frame.byteOffset).getUint32(0);
}
