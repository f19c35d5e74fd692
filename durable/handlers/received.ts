/**
 * received: the kernel has every outbox message up to `mid`; those are dropped. No answer.
 */
import { invalidField, type ReceivedMessage } from "../../schema";
import type { Handler } from "./context";

export const handleReceived: Handler<ReceivedMessage> = (ctx, message) => {
  const lastMid = (ctx.pager.kernels.get(ctx.kernel)?.next_mid ?? 1) - 1;
  if (message.mid > lastMid) {
    throw invalidField(
      "mid",
      `(${message.mid}) is above the last mid sent to this kernel (${lastMid})`,
    );
  }
  ctx.pager.outbox.acknowledge(ctx.kernel, message.mid);
};
