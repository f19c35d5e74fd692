/**
 * `requireRight(right)`: the verified token must grant `right` for this route (read for
 * reads and sockets, write for writes and synchronize, admin for DELETE); else 403.
 */
import { createMiddleware } from "hono/factory";
import { KERN_PROTECTION_FAILURE, ProtocolError, type Right } from "../schema";
import type { AppEnv } from "./app-env";

export function requireRight(right: Right) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const { rights } = c.get("grant");
    if (!rights.includes(right)) {
      throw new ProtocolError(
        KERN_PROTECTION_FAILURE,
        "forbidden",
        `this request needs the ${right} right; the token grants ${rights.join(", ") || "none"}`,
      );
    }
    await next();
  });
}
