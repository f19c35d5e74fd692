/**
 * memory_object_terminate: a kernel is done with the object. Its outstanding requests, outbox,
 * cached ranges and record are forgotten (docs/protocol.md §3); after the ack, and every answer before
 * it, the socket closes (1000).
 */
import { CLOSE_NORMAL, type TerminateMessage } from "../../schema";
import { closeQuietly } from "../sockets";
import type { Handler } from "./context";

export const handleTerminate: Handler<TerminateMessage> = (ctx) => {
  const { pager, kernel } = ctx;
  pager.forgetKernel(kernel, ctx.seqno);
  const socket = ctx.socket;
  if (!socket) return;
  return async () => {
    // A data_supply still being read for an earlier request, and the ack behind it, go first.
    await pager.drained(kernel);
    closeQuietly(socket, CLOSE_NORMAL, "terminated");
  };
};
