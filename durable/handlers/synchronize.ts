/**
 * memory_object_synchronize: a kernel asks that a range reach the state its sync_flags name
 * (protocol.md §6). Records an outstanding request with the tracker, which completes it through
 * the outbox; the flush it may need starts right after this step commits.
 */
import {
  KERN_RESOURCE_SHORTAGE,
  ProtocolError,
  checkWithinObject,
  pageSpanOf,
  type SynchronizeMessage,
} from "../../schema";
import type { Handler } from "./context";

export const handleSynchronize: Handler<SynchronizeMessage> = (ctx, message) => {
  const { offset, length, sync_flags } = message;
  checkWithinObject(offset, length, ctx.geometry.maxSize);
  const limit = ctx.pager.limits.maxSyncsPerKernel;
  if (ctx.pager.tracker.countOf(ctx.kernel) >= limit) {
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "too_many_syncs",
      `this kernel already has ${limit} outstanding synchronize requests (MAX_SYNCS_PER_KERNEL); retry after a completion`,
    );
  }
  // Its completion will go through the kernel's outbox (an HTTP caller is answered directly).
  if (ctx.socket) ctx.pager.outbox.checkRoom(ctx.kernel, ctx.pager.tracker.countOf(ctx.kernel));
  ctx.pager.tracker.admit(
    { seqno: ctx.seqno, kernel: ctx.kernel, id: message.id, offset, length, sync_flags },
    pageSpanOf(offset, length, ctx.geometry.pageSize),
  );
};
