/**
 * memory_object_data_unlock: a kernel asks for more access to pages it holds. An object that is
 * not coherent prohibits nothing, so it grants at once with a lock_request whose lock_value is
 * VM_PROT_NONE, through the outbox (docs/protocol.md §5). A coherent one grants it in seqno
 * order once the other holders gave way (docs/protocol.md §10.4). Changes the kernel's outbox,
 * which is bounded: past OUTBOX_MAX_PER_KERNEL unreceived messages the unlock is refused.
 */
import {
  MEMORY_OBJECT_RETURN_NONE,
  VM_PROT_NONE,
  checkPageRange,
  type DataUnlockMessage,
} from "../../schema";
import type { Handler } from "./context";
import { requestAccess } from "./request-access";

export const handleDataUnlock: Handler<DataUnlockMessage> = (ctx, message) => {
  const span = checkPageRange(message.offset, message.length, ctx.geometry);
  ctx.pager.checkOutboxRoom(ctx.kernel);
  // Without VM_PROT_WRITE it is a read (docs/protocol.md §10.4).
  if (ctx.pager.coherent()) return requestAccess(ctx, "unlock", message, span);
  ctx.pager.postToOutbox(ctx.kernel, {
    type: "memory_object_lock_request",
    lock_id: ctx.pager.nextLockId(),
    offset: message.offset,
    length: message.length,
    should_return: MEMORY_OBJECT_RETURN_NONE,
    should_flush: false,
    lock_value: VM_PROT_NONE,
  });
};
