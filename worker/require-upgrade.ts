/**
 * `requireUpgrade()`: the control route takes WebSocket upgrades only (docs/protocol.md §2);
 * anything else gets 426 before it reaches the object. Its kernel id is checked by the route
 * (schema/http-api.ts).
 */
import { createMiddleware } from "hono/factory";
import { KERN_INVALID_ARGUMENT, ProtocolError } from "../schema";

export function requireUpgrade() {
  return createMiddleware(async (c, next) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new ProtocolError(
        KERN_INVALID_ARGUMENT,
        "upgrade_required",
        "the control channel is a WebSocket: send Upgrade: websocket",
      );
    }
    await next();
  });
}
