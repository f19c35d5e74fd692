/**
 * Body limits (docs/protocol.md §9), refused with 413 before the body reaches the object.
 *
 * - `limitBody({ maxBytes })` for small JSON bodies: Hono's `bodyLimit` counts them, buffering a
 *   body of unknown length (at most `maxBytes`).
 * - `limitStreamedBody({ maxBytes })` for page data (up to 64 MiB): never buffers. A declared
 *   `content-length` over the limit is refused here; a body of unknown length (chunked) streams
 *   on, and the object counts it as it spools it, refusing it past the same limit
 *   (durable/http-operations.ts), so the Worker never holds a large body in memory.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { bodyTooLarge } from "../schema";

export function limitBody(options: { maxBytes: number }) {
  return bodyLimit({
    maxSize: options.maxBytes,
    onError: () => {
      throw bodyTooLarge(options.maxBytes);
    },
  });
}

export function limitStreamedBody(options: { maxBytes: number }): MiddlewareHandler {
  return async (c, next) => {
    const declared = c.req.header("content-length");
    if (declared !== undefined && !c.req.header("transfer-encoding")) {
      if (Number(declared) > options.maxBytes) throw bodyTooLarge(options.maxBytes);
    }
    await next();
  };
}
