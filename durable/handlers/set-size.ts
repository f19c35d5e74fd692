/**
 * memory_object_set_size: a kernel sets the object's size (docs/protocol.md §13). A shrink drops
 * the pages wholly past the size and zeroes the rest of the last page; growing adds zeros. Inside
 * an atomic group it is staged and takes effect at the group's commit (docs/protocol.md §12). On
 * a coherent object a shrink is a write of the pages it cuts, fenced like a dirty return
 * (docs/protocol.md §10.6).
 */
import { checkSize, type SetSizeMessage } from "../../schema";
import type { Handler } from "./context";

export const handleSetSize: Handler<SetSizeMessage> = (ctx, message) => {
  const { pager, kernel } = ctx;
  checkSize(message.size, ctx.geometry.maxSize);
  if (message.group === undefined) {
    // A shrink of a coherent object writes the pages it cuts: only their writer may.
    if (pager.coherent()) pager.checkResize(kernel, message.size, ctx.geometry.pageSize);
    pager.resize(message.size, ctx.geometry.pageSize, ctx.seqno);
    return;
  }
  pager.openGroup(kernel, message.group);
  pager.stageSize(kernel, message.group, message.size);
};
