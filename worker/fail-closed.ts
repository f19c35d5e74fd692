/**
 * `failClosed()`: a deployment that requires authentication (`REQUIRE_AUTH = "true"`, the
 * deployed default) but has no `AUTH_SECRET` refuses every request with 503, rather than
 * serving anyone who asks.
 */
import { createMiddleware } from "hono/factory";
import { KERN_PROTECTION_FAILURE, ProtocolError } from "../schema";
import type { AppEnv } from "./app-env";

export function failClosed() {
  return createMiddleware<AppEnv>(async (c, next) => {
    if (c.env.REQUIRE_AUTH === "true" && !c.env.AUTH_SECRET) {
      throw new ProtocolError(
        KERN_PROTECTION_FAILURE,
        "auth_unconfigured",
        "this deployment requires authentication but has no AUTH_SECRET: every request is refused",
      );
    }
    await next();
  });
}
