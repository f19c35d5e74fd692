/**
 * Receiving an HTTP `PUT` body (up to MAX_BODY_BYTES, 64 MiB) without holding it: it is read as
 * a stream into a slice of at most SPOOL_SLICE_BYTES, and each full slice goes into a spool in
 * SQLite (durable/spools.ts) before the next is read. A body that fits in one slice stays in
 * memory and is journaled straight from it. The slice's bytes come from the isolate's byte budget,
 * so concurrent uploads wait for room instead of passing the isolate's memory.
 */
import type { BodyOperations } from "./handlers/transport-operations";
import { SPOOL_SLICE_BYTES } from "./spools";

/** A body as it comes over RPC from the Worker: its stream, and its declared length if any. */
export interface Upload {
  body: ReadableStream<Uint8Array> | null;
  declaredLength: number | null;
}

export interface ReceivedBody {
  pageSize: number;
  /** Bytes that arrived (counting stops just past MAX_BODY_BYTES). */
  length: number;
  tooLarge: boolean;
  /** The spool holding the body, or null when it fit in one slice: then `bytes` holds it. */
  spool: number | null;
  /** The whole pages of a body that fit in one slice (empty when spooled). */
  bytes: Uint8Array;
  /** Frees the spool and the budget; call once the body is journaled or refused. */
  done(): void;
}

/**
 * Reads the body, cut into pages of `pageSize`, stopping at MAX_BODY_BYTES (the Worker let a body
 * of unknown length through to be counted here). A tail shorter than a page is not kept: the
 * length check refuses such a body anyway.
 *
 * @example const body = await receiveBody(pager, upload, 4096); try { … } finally { body.done(); }
 */
export async function receiveBody(
  pager: BodyOperations,
  upload: Upload,
  pageSize: number,
): Promise<ReceivedBody> {
  const declared = upload.declaredLength ?? NaN;
  // A small body of known length takes only what it needs from the budget.
  const sliceBytes =
    Number.isSafeInteger(declared) && declared < SPOOL_SLICE_BYTES
      ? Math.max(pageSize, Math.ceil(declared / pageSize) * pageSize)
      : SPOOL_SLICE_BYTES;
  const release = await pager.takeBytes(sliceBytes);
  const slice = new Uint8Array(sliceBytes);
  let spool: number | null = null;
  let part = 0;
  const body: ReceivedBody = {
    pageSize,
    length: 0,
    tooLarge: false,
    spool: null,
    bytes: new Uint8Array(0),
    done: () => {
      if (spool !== null) pager.dropSpool(spool);
      release();
    },
  };
  const spoolSlice = (bytes: Uint8Array) => {
    spool ??= pager.openSpool();
    pager.appendToSpool(spool, part, bytes, pageSize);
    part += bytes.byteLength / pageSize;
  };
  let filled = 0;
  try {
    const reader = upload.body?.getReader();
    for (
      let next = await reader?.read();
      reader && next && !next.done;
      next = await reader.read()
    ) {
      const chunk = next.value;
      body.length += chunk.byteLength;
      if (body.length > pager.limits.maxBodyBytes) {
        body.tooLarge = true;
        await reader.cancel();
        break;
      }
      for (let at = 0; at < chunk.byteLength;) {
        if (filled === sliceBytes) {
          // Spooled only once more bytes arrive: a body of exactly one slice stays in memory.
          spoolSlice(slice);
          filled = 0;
        }
        const taken = Math.min(chunk.byteLength - at, sliceBytes - filled);
        slice.set(chunk.subarray(at, at + taken), filled);
        filled += taken;
        at += taken;
      }
    }
  } catch (error) {
    body.done();
    throw error;
  }
  const wholePages = filled - (filled % pageSize);
  if (spool === null) {
    body.bytes = slice.subarray(0, wholePages);
  } else if (wholePages > 0) {
    spoolSlice(slice.subarray(0, wholePages));
  }
  body.spool = spool;
  return body;
}
