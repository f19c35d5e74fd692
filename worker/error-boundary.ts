/**
 * The Worker's one error boundary (CONTRIBUTING.md §5): whatever was thrown becomes the HTTP
 * error of docs/protocol.md §9 (`errorResponse`: a `ProtocolError` with the status of its code;
 * anything else a 500 that reveals nothing but its kind).
 */
import type { Context } from "hono";
import { KERN_INVALID_ARGUMENT, ProtocolError, errorResponse } from "../schema";

export function onError(error: Error, c: Context): Response {
  return answerWith(c, errorResponse(error, "unhandled error"));
}

export function notFound(c: Context): Response {
  const error = new ProtocolError(
    KERN_INVALID_ARGUMENT,
    "not_found",
    `no route for ${c.req.method} ${new URL(c.req.url).pathname}; GET / lists the API`,
  );
  return answerWith(c, errorResponse(error));
}

/** `response` through the context, so the headers middleware set before it (CORS) are kept. */
function answerWith(c: Context, response: Response): Response {
  return c.newResponse(response.body, response);
}
