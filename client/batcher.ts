/**
 * Coalesces what a kernel sends in one turn into batch frames (docs/protocol.md §11): frames
 * handed to `add` wait for a microtask, then leave packed into as few frames as the bounds allow.
 * Everything a caller sends without awaiting in between (an msync's returns and its synchronize,
 * a burst of synchronizes) so pays the per-frame and per-commit costs once. One batcher serves
 * one socket after one `memory_object_ready`: the connection makes a new one for the next.
 *
 * It packs messages already encoded as single frames (docs/protocol.md §2), the encoding the
 * connection keeps for resending, by copying their bytes rather than serialising them again;
 * the frames it makes are those `encodeBatch` (schema/batch.ts) would, and the manager reads them
 * with `decodeFrameOrBatch`, as the connection reads the manager's.
 */

export class Batcher {
  private queued: (string | Uint8Array)[] = [];
  private scheduled = false;
  /** A message that rides on the next frame going out anyway (`ride`). */
  private rider: (() => string | null) | null = null;

  /** `send` puts one frame on the socket; it is called only from the microtask. */
  constructor(
    private readonly send: (frame: string | Uint8Array) => void,
    private readonly limits: BatchLimits,
  ) {}

  /** Queues one message, encoded as a single frame; it leaves once this turn's code is done. */
  add(frame: string | Uint8Array): void {
    this.queued.push(frame);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  /**
   * Lets `make`'s message travel with the next frame that leaves anyway, last in it, instead of
   * in a frame (and a commit) of its own; `make` may find by then that nothing needs saying.
   * A newer rider replaces an older one.
   */
  ride(make: () => string | null): void {
    this.rider = make;
  }

  /**
   * Takes back a frame `add` queued that has not left yet (its call was aborted); false if it
   * has left, or was never queued here.
   */
  withdraw(frame: string | Uint8Array): boolean {
    const index = this.queued.indexOf(frame);
    if (index < 0) return false;
    this.queued.splice(index, 1);
    return true;
  }

  /** Sends what is queued now (the microtask then finds nothing). */
  flush(): void {
    this.scheduled = false;
    const frames = this.queued;
    this.queued = [];
    const rider = frames.length > 0 ? this.rider?.() : null;
    if (frames.length > 0) this.rider = null;
    if (rider) frames.push(rider);
    for (const frame of packBatches(frames, this.limits)) this.send(frame);
  }
}

/** The bounds of one batch frame (docs/protocol.md §11). */
export interface BatchLimits {
  /** Messages in one frame. */
  messages: number;
  /** Payload bytes of all its messages together: the ready's `max_transfer`. */
  payloadBytes: number;
  /** Bytes of UTF-8 JSON in its header (the whole array). */
  headerBytes: number;
}

/**
 * Below the manager's 64 KiB bound on any frame's header, with room to spare: a batch header is
 * the messages' headers joined, so it grows with the count.
 */
export const MAX_BATCH_HEADER_BYTES = 60_000;

/** One message as a single frame, taken apart: its JSON header and its payload, if any. */
interface Piece {
  frame: string | Uint8Array;
  json: string | Uint8Array;
  jsonBytes: number;
  payload: Uint8Array | null;
}

const encoder = new TextEncoder();
const OPEN = "[".charCodeAt(0);
const COMMA = ",".charCodeAt(0);
const CLOSE = "]".charCodeAt(0);

/**
 * Packs single frames, in order, into as few frames as the bounds allow: a text frame holding a
 * JSON array, or a binary frame with an array header and the payloads back to back if any
 * message carries pages. A new frame starts when the next message would pass a bound; a message
 * that ends up alone leaves as the single frame it was.
 *
 * @example for (const frame of packBatches(frames, limits)) socket.send(frame);
 */
export function packBatches(
  frames: readonly (string | Uint8Array)[],
  limits: BatchLimits,
): (string | Uint8Array)[] {
  const packed: (string | Uint8Array)[] = [];
  let group: Piece[] = [];
  let headerBytes = 1; // "["
  let payloadBytes = 0;
  for (const frame of frames) {
    const piece = pieceOf(frame);
    const payload = piece.payload?.byteLength ?? 0;
    // Each message adds its JSON and one "," or the closing "]".
    const fits =
      group.length < limits.messages &&
      payloadBytes + payload <= limits.payloadBytes &&
      headerBytes + piece.jsonBytes + 1 <= limits.headerBytes;
    if (group.length > 0 && !fits) {
      packed.push(packGroup(group));
      group = [];
      headerBytes = 1;
      payloadBytes = 0;
    }
    group.push(piece);
    headerBytes += piece.jsonBytes + 1;
    payloadBytes += payload;
  }
  if (group.length > 0) packed.push(packGroup(group));
  return packed;
}

function pieceOf(frame: string | Uint8Array): Piece {
  if (typeof frame === "string") {
    return { frame, json: frame, jsonBytes: utf8Length(frame), payload: null };
  }
  const headerLength = readLength(frame);
  return {
    frame,
    json: frame.subarray(4, 4 + headerLength),
    jsonBytes: headerLength,
    payload: frame.subarray(4 + headerLength),
  };
}

function packGroup(group: Piece[]): string | Uint8Array {
  if (group.length === 1) return group[0]!.frame;
  if (group.every((piece) => piece.payload === null)) {
    return `[${group.map((piece) => piece.json as string).join(",")}]`;
  }
  const jsons = group.map((piece) =>
    typeof piece.json === "string" ? encoder.encode(piece.json) : piece.json,
  );
  const headerLength = jsons.reduce((sum, json) => sum + json.byteLength + 1, 1);
  const payloadLength = group.reduce((sum, piece) => sum + (piece.payload?.byteLength ?? 0), 0);
  const frame = new Uint8Array(4 + headerLength + payloadLength);
  new DataView(frame.buffer).setUint32(0, headerLength);
  let at = 4;
  frame[at++] = OPEN;
  jsons.forEach((json, i) => {
    frame.set(json, at);
    at += json.byteLength;
    frame[at++] = i === jsons.length - 1 ? CLOSE : COMMA;
  });
  for (const piece of group) {
    if (!piece.payload) continue;
    frame.set(piece.payload, at);
    at += piece.payload.byteLength;
  }
  return frame;
}

function readLength(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
}

/** The UTF-8 byte length of a string, without encoding it. */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4; // a surrogate pair: one four-byte character
      i++;
    } else bytes += 3;
  }
  return bytes;
}
