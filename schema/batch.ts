/**
 * Batches (docs/protocol.md §11): several messages in one frame, so a kernel and the manager pay
 * the per-frame cost once. A text batch is a JSON array of messages; a binary batch is the binary
 * frame of docs/protocol.md §2 whose header is such an array, with the payloads back to back in
 * the array's order: each message that carries pages is followed by exactly its `length` bytes.
 * Both directions use the same codec: the manager reads a kernel's batches and sends its replies
 * as batches, the client the other way round.
 */
import { KERN_INVALID_ARGUMENT, MAX_BATCH_MESSAGES } from "./constants";
import { asMessage, splitFrame, type Frame } from "./frame";
import { ProtocolError } from "./protocol-error";

/** A decoded batch frame. */
export interface Batch {
  /**
   * Its messages in array order: each one's frame, or what is wrong with it (not a JSON object),
   * which is that message's own error, not the frame's.
   */
  messages: (Frame | ProtocolError)[];
  /** The payload bytes of all its messages together (at most max_transfer). */
  payloadBytes: number;
}

/** One message to encode into a batch, with its pages if it carries any. */
export interface BatchEntry {
  message: object;
  payload?: Uint8Array;
}

/** The messages whose pages follow their header (docs/protocol.md §2). */
const CARRIES_PAGES = new Set(["memory_object_data_return", "memory_object_data_supply"]);

const encoder = new TextEncoder();

/**
 * Decodes a frame that may be a batch: a JSON array (or a binary frame whose header is one) is a
 * batch, anything else one message, as `decodeFrame` reads it. Throws a `ProtocolError` for a
 * frame that cannot be parsed at all: besides what `decodeFrame` refuses, an empty array, more
 * than MAX_BATCH_MESSAGES messages, payload bytes that do not add up to the lengths of the
 * messages that carry pages, or such a message without a valid `length` to split them by.
 *
 * @example
 * const decoded = decodeFrameOrBatch(event.data);
 * for (const m of isBatch(decoded) ? decoded.messages : [decoded]) handle(m);
 */
export function decodeFrameOrBatch(data: string | ArrayBuffer | Uint8Array): Frame | Batch {
  const { json, payload } = splitFrame(data);
  if (!Array.isArray(json)) return { header: asMessage(json), payload };
  return splitBatch(json, payload);
}

/** Whether `decodeFrameOrBatch` read a batch. */
export function isBatch(decoded: Frame | Batch): decoded is Batch {
  return "messages" in decoded;
}

/**
 * Encodes messages as one batch frame: text (a JSON array) when none carries pages, else binary
 * (the array as header, then each message's pages in order). Each payload must be its message's
 * `length` bytes.
 *
 * @example socket.send(encodeBatch([{ message: ack }, { message: supply, payload: bytes }]));
 */
export function encodeBatch(entries: readonly BatchEntry[]): string | Uint8Array {
  const header = `[${entries.map((entry) => JSON.stringify(entry.message)).join(",")}]`;
  const payloads = entries.flatMap((entry) => (entry.payload ? [entry.payload] : []));
  if (payloads.length === 0) return header;
  const json = encoder.encode(header);
  const payloadBytes = payloads.reduce((sum, payload) => sum + payload.byteLength, 0);
  const frame = new Uint8Array(4 + json.byteLength + payloadBytes);
  new DataView(frame.buffer).setUint32(0, json.byteLength);
  frame.set(json, 4);
  let offset = 4 + json.byteLength;
  for (const payload of payloads) {
    frame.set(payload, offset);
    offset += payload.byteLength;
  }
  return frame;
}

function splitBatch(entries: unknown[], payload: Uint8Array | null): Batch {
  if (entries.length === 0) throw badBatch("a batch must hold at least one message");
  if (entries.length > MAX_BATCH_MESSAGES) {
    throw badBatch(
      `a batch of ${entries.length} messages is over ${MAX_BATCH_MESSAGES} (MAX_BATCH_MESSAGES)`,
    );
  }
  let offset = 0;
  const messages = entries.map((entry, index): Frame | ProtocolError => {
    let header: Record<string, unknown>;
    try {
      header = asMessage(entry);
    } catch (error) {
      return error as ProtocolError;
    }
    // A text batch carries no pages: a data_return in it is refused as a text frame's would be.
    if (payload === null || !CARRIES_PAGES.has(header.type as string)) {
      return { header, payload: null };
    }
    const length = header.length;
    if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 0) {
      throw badBatch(
        `message ${index} (${String(header.type)}) has no valid length, so the payloads cannot be split`,
      );
    }
    if (offset + length > payload.byteLength) {
      throw badBatch(
        `the payloads are ${payload.byteLength} bytes, fewer than the lengths of the messages that carry pages`,
      );
    }
    const frame = { header, payload: payload.subarray(offset, offset + length) };
    offset += length;
    return frame;
  });
  if (payload !== null && offset !== payload.byteLength) {
    throw badBatch(
      `the payloads are ${payload.byteLength} bytes, but the messages that carry pages have ${offset}`,
    );
  }
  return { messages, payloadBytes: offset };
}

function badBatch(message: string): ProtocolError {
  return new ProtocolError(KERN_INVALID_ARGUMENT, "bad_frame", message);
}
