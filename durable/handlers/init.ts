/**
 * memory_object_init: a kernel starts (or resumes) on a socket. May fix the object's page size
 * (only a kernel whose token can write), register the kernel (letting a reclaimable one of its
 * kind go if its kind is full), drop outbox messages it has received and clear its stale mark;
 * notes whether the socket takes batches (docs/protocol.md §11); answers `memory_object_ready`,
 * then resends the outbox in mid order (docs/protocol.md §3).
 */
import {
  MEMORY_OBJECT_COPY_DELAY,
  modeMismatch,
  pageSizeMismatch,
  type InitMessage,
} from "../../schema";
import type { Handler } from "./context";

export const handleInit: Handler<InitMessage> = (ctx, message) => {
  const { pager, kernel } = ctx;
  const pageSize = pager.pageSize();
  if (pageSize !== null && pageSize !== message.page_size) {
    throw pageSizeMismatch(message.page_size, pageSize);
  }
  const coherent = pager.coherent();
  if (coherent !== null && message.coherent !== undefined && message.coherent !== coherent) {
    throw modeMismatch(message.coherent, coherent);
  }
  const writer = pager.mayWrite(ctx.socket!);
  const known = pager.kernelRecord(kernel) !== undefined;
  if (!known) pager.makeRoomForKernel(writer);
  pager.acknowledgeOutbox(kernel, message.received_mid, "received_mid");
  // Only a kernel that may write fixes a new object's page size: a reader is answered with the
  // size it asked for and fixes nothing, so a read token cannot lock writers out.
  const creates = pageSize === null && writer;
  if (creates) {
    pager.setPageSize(message.page_size);
    pager.setCoherent(message.coherent === true);
  }
  const record = pager.registerKernel(kernel, writer);
  // The groups it does not say it will finish are abandoned, never applied (docs/protocol.md §12).
  pager.discardGroupsBut(kernel, message.open_groups ?? []);
  const flush = record.stale === 1 || (!known && pager.mayHaveForgotten());
  if (flush) pager.startClean(kernel);
  // This manager always takes batches when asked (docs/protocol.md §11).
  const batch = message.batch === true;
  pager.markInitialized(ctx.socket!, batch);
  const ready = {
    type: "memory_object_ready" as const,
    object: pager.objectName(),
    kernel,
    page_size: message.page_size,
    max_transfer: pager.limits.maxTransfer,
    max_size: pager.maxSize(message.page_size),
    may_cache: true,
    copy_strategy: MEMORY_OBJECT_COPY_DELAY,
    last_id: record.last_id,
    flush,
    batch,
    size: pager.objectSize(),
    coherent: pager.coherent() ?? false,
    seqno: ctx.seqno,
  };
  if (!creates) {
    ctx.reply(ready);
    pager.resendOutbox(ctx.socket!, kernel);
    return;
  }
  // The object is listed (docs/dashboard.md) before its creator hears back.
  const reply = ctx.reserveReply();
  pager.resendOutbox(ctx.socket!, kernel);
  return async () => {
    await pager.publishManifest().catch((error: unknown) => {
      console.warn(`directory entry of ${ready.object} not written: ${String(error)}`);
    });
    reply(ready);
  };
};
