/**
 * memory_object_init: a kernel starts (or resumes) on a socket. May fix the object's page size,
 * register the kernel, drop outbox messages it has received and clear its stale mark; answers
 * `memory_object_ready`, then resends the outbox in mid order (protocol.md §3).
 */
import {
  MEMORY_OBJECT_COPY_DELAY,
  ProtocolError,
  KERN_INVALID_ARGUMENT,
  KERN_RESOURCE_SHORTAGE,
  type InitMessage,
} from "../../schema";
import type { Handler } from "./context";

export const handleInit: Handler<InitMessage> = (ctx, message) => {
  const { pager, kernel } = ctx;
  const pageSize = pager.pageSize();
  if (pageSize !== null && pageSize !== message.page_size) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "page_size_mismatch",
      `page_size (${message.page_size}) differs from the object's page size (${pageSize})`,
    );
  }
  if (!pager.kernels.get(kernel) && pager.kernels.count() >= pager.limits.maxKernels) {
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "too_many_kernels",
      `the object already has ${pager.limits.maxKernels} kernels (MAX_KERNELS); terminate one first`,
    );
  }
  pager.outbox.acknowledge(kernel, message.received_mid, "received_mid");
  if (pageSize === null) pager.setPageSize(message.page_size);
  const record = pager.kernels.ensure(kernel);
  const flush = record.stale === 1;
  if (flush) {
    pager.kernels.clearStale(kernel);
    pager.residency.forgetAll(kernel);
  }
  pager.sockets.markInitialized(ctx.socket!);
  ctx.reply({
    type: "memory_object_ready",
    object: pager.objectName(),
    kernel,
    page_size: message.page_size,
    max_transfer: pager.limits.maxTransfer,
    max_size: pager.maxSize(message.page_size),
    may_cache: true,
    copy_strategy: MEMORY_OBJECT_COPY_DELAY,
    last_id: record.last_id,
    flush,
    seqno: ctx.seqno,
  });
  pager.outbox.resend(ctx.socket!, kernel);
};
