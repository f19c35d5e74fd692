/**
 * memory_object_data_return: a kernel hands pages back. Dirty pages go into the journal (durable
 * once the transaction commits, so the ack that follows never announces a lost write); clean
 * ones are the manager's own copy already and are dropped; grouped ones wait, staged, for their
 * group's synchronize (docs/protocol.md §12). Over its cap the journal refuses, and
 * so does an object whose SQLite database would pass its safe share of the platform's 10 GB.
 */
import {
  KERN_RESOURCE_SHORTAGE,
  ProtocolError,
  checkPageRange,
  type DataReturnMessage,
  type PageSpan,
} from "../../schema";
import type { HandlerContext, Handler } from "./context";

export const handleDataReturn: Handler<DataReturnMessage> = (ctx, message) => {
  const span = checkPageRange(message.offset, message.length, ctx.geometry);
  if (message.group !== undefined) return stageReturn(ctx, message.group, span, message);
  const coherent = ctx.pager.coherent();
  if (message.dirty) {
    // Only the writer may change a coherent object's pages (docs/protocol.md §10.6).
    if (coherent) ctx.pager.checkWriter(ctx.kernel, span, "a dirty data_return");
    checkRoomFor(ctx, span);
    ctx.pager.journalReturn(span.first, ctx.geometry.pageSize, message.data, ctx.seqno);
  }
  // The kernel keeps no copy: it holds the pages no more (docs/protocol.md §10.2).
  if (coherent && !message.kernel_copy) ctx.pager.releaseHold(ctx.kernel, span);
};

/**
 * A grouped return is staged until its group's synchronize (docs/protocol.md §12). One refused
 * (no room, among others) discards its group: durable/socket-loop.ts does that after the refusal.
 * On a coherent object it is fenced at its commit, and keeps the kernel's hold whatever its
 * kernel_copy says: the commit needs the kernel to be the pages' writer (docs/protocol.md §10.6).
 */
function stageReturn(
  ctx: HandlerContext,
  group: number,
  span: PageSpan,
  message: DataReturnMessage,
): void {
  const { pager, kernel } = ctx;
  pager.openGroup(kernel, group);
  if (!message.dirty) return;
  checkRoomFor(ctx, span);
  pager.stageReturn(kernel, group, span.first, ctx.geometry.pageSize, message.data);
}

/**
 * Refuses a dirty return of `span` that the journal or the object's database has no room for
 * (KERN_RESOURCE_SHORTAGE: the kernel keeps its pages and may retry). Shared with HTTP `PUT`.
 */
export function checkRoomFor(ctx: HandlerContext, span: PageSpan): void {
  const { pager, geometry } = ctx;
  const pages = span.end - span.first;
  // Staged pages of open groups will land in the journal at their commit (docs/protocol.md §12).
  const journalBytes = (pager.journalPages() + pager.stagedPages() + pages) * geometry.pageSize;
  if (journalBytes > pager.limits.journalMaxBytes) {
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "journal_full",
      `the journal is full (${pager.limits.journalMaxBytes} bytes not yet in R2); retry later`,
    );
  }
  if (pager.databaseBytes() + pages * geometry.pageSize > pager.limits.maxDatabaseBytes) {
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "storage_full",
      `the object's database would pass ${pager.limits.maxDatabaseBytes} bytes, its safe share ` +
        `of the platform's 10 GB per object; delete the object or write to another`,
    );
  }
}
