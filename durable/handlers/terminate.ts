/**
 * memory_object_terminate: a kernel is done with the object. Its outstanding requests, outbox,
 * cached ranges and record are forgotten (protocol.md §3); after the ack the socket closes (1000).
 */
import { CLOSE_NORMAL, type TerminateMessage } from "../../schema";
import { closeQuietly } from "../sockets";
import type { Handler } from "./context";

export const handleTerminate: Handler<TerminateMessage> = (ctx) => {
  const { pager, kernel } = ctx;
  pager.tracker.forget(kernel);
  pager.outbox.forget(kernel);
  pager.residency.forgetAll(kernel);
  pager.kernels.forget(kernel);
  const socket = ctx.socket;
  if (socket) return async () => closeQuietly(socket, CLOSE_NORMAL, "terminated");
};
