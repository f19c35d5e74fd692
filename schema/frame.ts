/**
 * The binary frame of docs/protocol.md §2: a u32 big-endian header length H, H bytes of UTF-8 JSON
 * header, then the payload. Text frames are plain JSON and carry no payload.
 */
import { KERN_INVALID_ARGUMENT } from "./constants";
import { ProtocolError } from "./protocol-error";

/** A decoded frame: its JSON header (not yet validated) and the payload bytes of a binary frame. */
export interface Frame {
  header: Record<string, unknown>;
  payload: Uint8Array | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * Encodes a message with page data as one binary frame.
 *
 * @example socket.send(encodeFrame({ type: "memory_object_data_return", id: 7, ... }, bytes));
 */
export function encodeFrame(header: object, payload: Uint8Array): Uint8Array {
  const json = encoder.encode(JSON.stringify(header));
  const frame = new Uint8Array(4 + json.byteLength + payload.byteLength);
  new DataView(frame.buffer).setUint32(0, json.byteLength);
  frame.set(json, 4);
  frame.set(payload, 4 + json.byteLength);
  return frame;
}

/**
 * Decodes a text or binary WebSocket frame; throws a `ProtocolError` naming what is malformed.
 *
 * @example const { header, payload } = decodeFrame(event.data);
 */
export function decodeFrame(data: string | ArrayBuffer | Uint8Array): Frame {
  const { json, payload } = splitFrame(data);
  return { header: asMessage(json), payload };
}

/**
 * A frame's parsed JSON (a message, or a batch's array: schema/batch.ts) and the bytes after a
 * binary frame's header (null for a text frame).
 */
export function splitFrame(data: string | ArrayBuffer | Uint8Array): {
  json: unknown;
  payload: Uint8Array | null;
} {
  if (typeof data === "string") return { json: parseJson(data), payload: null };
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.byteLength < 4) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "bad_frame",
      "binary frame must start with a 4-byte header length",
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0);
  if (headerLength > bytes.byteLength - 4) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "bad_frame",
      `binary frame header length ${headerLength} exceeds the ${bytes.byteLength - 4} bytes that follow it`,
    );
  }
  let text: string;
  try {
    text = decoder.decode(bytes.subarray(4, 4 + headerLength));
  } catch {
    throw new ProtocolError(KERN_INVALID_ARGUMENT, "bad_json", "frame header is not valid UTF-8");
  }
  return { json: parseJson(text), payload: bytes.subarray(4 + headerLength) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ProtocolError(KERN_INVALID_ARGUMENT, "bad_json", "message is not valid JSON");
  }
}

/** A message is a JSON object; anything else (an array too, outside a batch) is refused. */
export function asMessage(value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(KERN_INVALID_ARGUMENT, "bad_json", "message must be a JSON object");
  }
  return value as Record<string, unknown>;
}
