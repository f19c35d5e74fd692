/**
 * The Worker's one error boundary (CONTRIBUTING.md §5): a `ProtocolError` becomes the JSON error of
 * docs/protocol.md §9 with its status; anything else is a 500 that reveals nothing but its kind.
 */
import type { Context } from "hono";
import { KERN_FAILURE, KERN_INVALID_ARGUMENT, ProtocolError, httpStatusOf } from "../schema";

export function onError(error: Error, c: Context): Response {
  if (error instanceof ProtocolError) {
    return c.json(error.toJSON(), httpStatusOf(error) as 400);
  }
  console.error("unhandled error", error);
  return c.json(new ProtocolError(KERN_FAILURE, "internal", "internal error").toJSON(), 500);
}

export function notFound(c: Context): Response {
  const error = new ProtocolError(
    KERN_INVALID_ARGUMENT,
    "not_found",
    `no route for ${c.req.method} ${new URL(c.req.url).pathname}; GET / lists the API`,
  );
  return c.json(error.toJSON(), 404);
}
