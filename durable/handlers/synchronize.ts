/**
 * memory_object_synchronize: a kernel asks that a range reach the state its sync_flags name
 * (docs/protocol.md §6), after committing the atomic group it names (docs/protocol.md §12). Records an outstanding request with the tracker, which completes it through
 * the outbox (or, over HTTP, answers the caller); the flush it may need starts right after this
 * step commits.
 */
import {
  KERN_RESOURCE_SHORTAGE,
  ProtocolError,
  checkWithinObject,
  pageSpanOf,
  type SynchronizeMessage,
} from "../../schema";
import type { Handler, HandlerContext } from "./context";

export const handleSynchronize: Handler<SynchronizeMessage> = (ctx, message) => {
  const { offset, length, sync_flags } = message;
  checkWithinObject(offset, length, ctx.geometry.maxSize);
  checkBudget(ctx);
  // Its completion will go through the kernel's outbox (an HTTP caller is answered directly).
  if (ctx.socket) ctx.pager.checkOutboxRoom(ctx.kernel, ctx.pager.syncCount(ctx.kernel));
  // A group commits at this seqno, before the request: its pages are the range's newest.
  if (message.group !== undefined) {
    ctx.pager.commitGroup(ctx.kernel, message.group, ctx.geometry.pageSize, ctx.seqno);
  }
  ctx.pager.requestSync(
    {
      seqno: ctx.seqno,
      kernel: ctx.kernel,
      caller: ctx.caller,
      id: message.id,
      offset,
      length,
      sync_flags,
    },
    pageSpanOf(offset, length, ctx.geometry.pageSize),
  );
};

/**
 * MAX_SYNCS_PER_KERNEL outstanding requests per kernel; over HTTP, per caller (kernel `http` is
 * everyone's, so one caller must not use up the others' allowance), and all HTTP callers together
 * at most what MAX_KERNELS kernels may have, so the object's table stays bounded.
 */
function checkBudget(ctx: HandlerContext): void {
  const { pager } = ctx;
  const limit = pager.limits.maxSyncsPerKernel;
  if (ctx.caller === undefined) {
    if (pager.syncCount(ctx.kernel) < limit) return;
    throw tooManySyncs(
      `this kernel already has ${limit} outstanding synchronize requests (MAX_SYNCS_PER_KERNEL); retry after a completion`,
    );
  }
  if (pager.syncCount(ctx.kernel, ctx.caller) >= limit) {
    throw tooManySyncs(
      `this caller already has ${limit} outstanding synchronize requests (MAX_SYNCS_PER_KERNEL, per HTTP caller); retry after a completion`,
    );
  }
  const total = limit * pager.limits.maxKernels;
  if (pager.syncCount(ctx.kernel) >= total) {
    throw tooManySyncs(
      `HTTP callers together already have ${total} outstanding synchronize requests (MAX_SYNCS_PER_KERNEL x MAX_KERNELS); retry after a completion`,
    );
  }
}

function tooManySyncs(message: string): ProtocolError {
  return new ProtocolError(KERN_RESOURCE_SHORTAGE, "too_many_syncs", message);
}
