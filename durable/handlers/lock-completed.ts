/**
 * memory_object_lock_completed: a kernel did what a lock_request asked. If an INVALIDATE waits on
 * that lock it stops waiting, and the kernel no longer caches the range. On a coherent object it
 * gave up (or kept read-only) the pages a grant waited for: grants whose way is clear now are
 * given, in this step (docs/protocol.md §10.3).
 */
import { checkWithinObject, type LockCompletedMessage } from "../../schema";
import type { Handler } from "./context";

export const handleLockCompleted: Handler<LockCompletedMessage> = (ctx, message) => {
  checkWithinObject(message.offset, message.length, ctx.geometry.maxSize);
  ctx.pager.lockCompleted(ctx.kernel, message.lock_id, ctx.seqno);
};
