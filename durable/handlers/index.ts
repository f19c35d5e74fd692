/**
 * The dispatch table (CONTRIBUTING.md §1): the one place that maps a message type to its handler.
 */
import type { KernelMessage, KernelMessageType } from "../../schema";
import type { Handler } from "./context";
import { handleDataRequest } from "./data-request";
import { handleDataReturn } from "./data-return";
import { handleDataUnlock } from "./data-unlock";
import { handleInit } from "./init";
import { handleLockCompleted } from "./lock-completed";
import { handleReceived } from "./received";
import { handleSetSize } from "./set-size";
import { handleSynchronize } from "./synchronize";
import { handleTerminate } from "./terminate";

type HandlerTable = { [T in KernelMessageType]: Handler<Extract<KernelMessage, { type: T }>> };

const handlers: HandlerTable = {
  memory_object_init: handleInit,
  memory_object_data_request: handleDataRequest,
  memory_object_data_unlock: handleDataUnlock,
  memory_object_data_return: handleDataReturn,
  memory_object_synchronize: handleSynchronize,
  memory_object_lock_completed: handleLockCompleted,
  memory_object_terminate: handleTerminate,
  memory_object_set_size: handleSetSize,
  received: handleReceived,
};

/** Runs the handler of the message's type. */
export function dispatch(ctx: Parameters<Handler<KernelMessage>>[0], message: KernelMessage) {
  return (handlers[message.type] as Handler<KernelMessage>)(ctx, message);
}

export type { HandlerContext, AfterStep } from "./context";
