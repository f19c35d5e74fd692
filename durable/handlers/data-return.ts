/**
 * memory_object_data_return: a kernel hands pages back. Dirty pages go into the journal (durable
 * once the transaction commits, so the ack that follows never announces a lost write); clean
 * ones are the manager's own copy already and are dropped. Over its cap the journal refuses.
 */
import {
  KERN_RESOURCE_SHORTAGE,
  ProtocolError,
  checkPageRange,
  type DataReturnMessage,
} from "../../schema";
import type { Handler } from "./context";

export const handleDataReturn: Handler<DataReturnMessage> = (ctx, message) => {
  const { pager, geometry } = ctx;
  const span = checkPageRange(message.offset, message.length, geometry);
  if (!message.dirty) return;
  const journalBytes = (pager.store.journalPages() + span.end - span.first) * geometry.pageSize;
  if (journalBytes > pager.limits.journalMaxBytes) {
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "journal_full",
      `the journal is full (${pager.limits.journalMaxBytes} bytes not yet in R2); retry later`,
    );
  }
  pager.store.journal(span.first, geometry.pageSize, message.data, ctx.seqno);
};
