/**
 * `requireUpgrade()`: the control route takes WebSocket upgrades only, with a valid kernel id
 * (docs/protocol.md §2); anything else gets a clear 4xx before it reaches the object.
 */
import { createMiddleware } from "hono/factory";
import { KERN_INVALID_ARGUMENT, ProtocolError, parseKernelId } from "../schema";

export function requireUpgrade() {
  return createMiddleware(async (c, next) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new ProtocolError(
        KERN_INVALID_ARGUMENT,
        "upgrade_required",
        "the control channel is a WebSocket: send Upgrade: websocket",
      );
    }
    parseKernelId(c.req.query("kernel"));
    await next();
  });
}
