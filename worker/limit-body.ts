/**
 * `limitBody({ maxBytes })`: refuses a body over the limit with 413 before it reaches the object
 * (protocol.md §9). Hono's `bodyLimit` does the counting, including chunked bodies.
 */
import { bodyLimit } from "hono/body-limit";
import { KERN_INVALID_ARGUMENT, ProtocolError } from "../schema";

export function limitBody(options: { maxBytes: number }) {
  return bodyLimit({
    maxSize: options.maxBytes,
    onError: () => {
      throw new ProtocolError(
        KERN_INVALID_ARGUMENT,
        "too_large",
        `body must not exceed ${options.maxBytes} bytes`,
      );
    },
  });
}
