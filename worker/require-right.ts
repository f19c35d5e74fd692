/**
 * `requireRight(right)`: the verified token must grant `right` for this route (read for
 * reads and sockets, write for writes and synchronize, admin for DELETE); else 403.
 */
import { createMiddleware } from "hono/factory";
import { missingRight, type Right } from "../schema";
import type { AppEnv } from "./app-env";

export function requireRight(right: Right) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const { rights } = c.get("grant");
    if (!rights.includes(right)) throw missingRight("this request", right, rights);
    await next();
  });
}
