/**
 * memory_object_data_request: a kernel asks for pages. Changes no page; records that the kernel
 * may now cache the range (for INVALIDATE) and fixes, in seqno order, which version of each page
 * it gets. The R2 reads run after, and the answer is data_supply, data_unavailable or data_error.
 * On a coherent object the kernel asks to hold the pages, which may wait for other holders to
 * give way (docs/protocol.md §10.3, docs/protocol.md §10.4).
 */
import {
  KERN_MEMORY_ERROR,
  VM_PROT_NONE,
  checkPageRange,
  type DataRequestMessage,
} from "../../schema";
import type { Handler } from "./context";
import { requestAccess } from "./request-access";

export const handleDataRequest: Handler<DataRequestMessage> = (ctx, message) => {
  const { pager, geometry } = ctx;
  const span = checkPageRange(message.offset, message.length, geometry);
  if (pager.coherent()) return requestAccess(ctx, "request", message, span);
  const plan = pager.planSupply(ctx.kernel, span, geometry.pageSize);
  const answer = {
    reply_to: message.id,
    seqno: ctx.seqno,
    offset: message.offset,
    length: message.length,
  };
  if (plan.sources.length === 0) {
    pager.finishRead(plan);
    ctx.reply({ type: "memory_object_data_unavailable", ...answer });
    return;
  }
  // Later messages to this kernel wait behind the supply (a lock request must not overtake it).
  const reply = ctx.reserveReply();
  return async () => {
    try {
      const bytes = await pager.readPlanned(plan, geometry.pageSize);
      reply(
        { type: "memory_object_data_supply", ...answer, lock_value: VM_PROT_NONE, precious: false },
        bytes,
      );
    } catch (error) {
      reply({
        type: "memory_object_data_error",
        ...answer,
        kern_return: KERN_MEMORY_ERROR,
        reason: `pages could not be read from storage: ${String(error)}`,
      });
    } finally {
      pager.finishRead(plan);
    }
  };
};
