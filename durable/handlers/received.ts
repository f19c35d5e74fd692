/**
 * received: the kernel has every outbox message up to `mid`; those are dropped. No answer.
 */
import type { ReceivedMessage } from "../../schema";
import type { Handler } from "./context";

export const handleReceived: Handler<ReceivedMessage> = (ctx, message) => {
  ctx.pager.acknowledgeOutbox(ctx.kernel, message.mid);
};
