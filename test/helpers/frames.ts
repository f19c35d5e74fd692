/**
 * Binary frames built by hand (docs/protocol.md §2), for the frames schema's `encodeFrame` cannot
 * make: a header given as text or bytes (not JSON, duplicate keys, a number `JSON.stringify`
 * never writes) and a length prefix that lies about it. A well-formed frame of a header object is
 * `encodeFrame`'s (`TestKernel.sendBinary`). Pure, so the fuzz frames can use it anywhere.
 */

const utf8 = new TextEncoder();

/**
 * A u32 big-endian header length (the header's own unless `declaredLength` says otherwise), the
 * header's bytes (text as UTF-8), then the payload.
 *
 * @example binaryFrame("{}", new Uint8Array(0), 256) // claims a 256-byte header, holds 2 bytes
 */
export function binaryFrame(
  header: string | Uint8Array,
  payload: Uint8Array = new Uint8Array(0),
  declaredLength?: number,
): Uint8Array {
  const bytes = typeof header === "string" ? utf8.encode(header) : header;
  const frame = new Uint8Array(4 + bytes.byteLength + payload.byteLength);
  new DataView(frame.buffer).setUint32(0, (declaredLength ?? bytes.byteLength) >>> 0);
  frame.set(bytes, 4);
  frame.set(payload, 4 + bytes.byteLength);
  return frame;
}
