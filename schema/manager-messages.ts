/**
 * Manager → kernel messages (docs/protocol.md §5). The manager builds them; the client reads them.
 */
import type { ErrorCode } from "./protocol-error";
import type { KernReturn } from "./constants";

export interface AckMessage {
  type: "ack";
  id: number;
  seqno: number;
}
export interface ReadyMessage {
  type: "memory_object_ready";
  object: string;
  kernel: string;
  page_size: number;
  max_transfer: number;
  max_size: number;
  may_cache: boolean;
  copy_strategy: number;
  last_id: number;
  flush: boolean;
  /** Batches are on for this socket (docs/protocol.md §11): only when the init asked. */
  batch: boolean;
  /** The object's size in bytes (docs/protocol.md §13). */
  size: number;
  /** The object is coherent (docs/protocol.md §10); false while its mode is not fixed. */
  coherent: boolean;
  seqno: number;
}
/** Sent as a binary frame whose payload is the `length` bytes of the range. */
export interface DataSupplyMessage {
  type: "memory_object_data_supply";
  reply_to: number;
  seqno: number;
  offset: number;
  length: number;
  lock_value: number;
  precious: boolean;
}
export interface DataUnavailableMessage {
  type: "memory_object_data_unavailable";
  reply_to: number;
  seqno: number;
  offset: number;
  length: number;
}
export interface DataErrorMessage {
  type: "memory_object_data_error";
  reply_to: number;
  seqno: number;
  offset: number;
  length: number;
  kern_return: KernReturn;
  reason: string;
}
export interface LockRequestMessage {
  type: "memory_object_lock_request";
  mid: number;
  lock_id: number;
  offset: number;
  length: number;
  should_return: number;
  should_flush: boolean;
  lock_value: number;
}
export interface SynchronizeCompletedMessage {
  type: "memory_object_synchronize_completed";
  mid: number;
  reply_to: number;
  seqno: number;
  offset: number;
  length: number;
}
export interface DestroyMessage {
  type: "memory_object_destroy";
  reason: string;
}
export interface ErrorMessage {
  type: "error";
  reply_to: number | null;
  seqno: number | null;
  kern_return: KernReturn;
  code: ErrorCode;
  message: string;
  /** Present when the error is the outbox answer to an accepted synchronize (docs/protocol.md §6.9). */
  mid?: number;
}

export type ManagerMessage =
  | AckMessage
  | ReadyMessage
  | DataSupplyMessage
  | DataUnavailableMessage
  | DataErrorMessage
  | LockRequestMessage
  | SynchronizeCompletedMessage
  | DestroyMessage
  | ErrorMessage;

/** Messages the manager keeps in the per-kernel outbox until received (docs/protocol.md §3). */
export type OutboxMessage = LockRequestMessage | SynchronizeCompletedMessage | ErrorMessage;

/** An outbox message before the outbox numbers it. */
export type UnnumberedOutboxMessage =
  | Omit<LockRequestMessage, "mid">
  | Omit<SynchronizeCompletedMessage, "mid">
  | Omit<ErrorMessage, "mid">;
