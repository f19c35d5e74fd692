/**
 * Kernel → manager messages (docs/protocol.md §4): their types and `parseKernelMessage`, which checks
 * the shape of each field. Rules that depend on the object (page size, max_size) live in
 * `ranges.ts`, applied by the handlers that know the object.
 */
import {
  KERN_INVALID_ARGUMENT,
  VM_SYNC_ASYNCHRONOUS,
  VM_SYNC_KNOWN_BITS,
  VM_SYNC_SYNCHRONOUS,
} from "./constants";
import {
  readBoolean,
  readCount,
  readGroups,
  readPageSize,
  readPositive,
  readProtection,
} from "./fields";
import type { Frame } from "./frame";
import { ProtocolError, invalidField } from "./protocol-error";

export interface InitMessage {
  type: "memory_object_init";
  id: number;
  page_size: number;
  received_mid: number;
  /** The kernel asks for batches (docs/protocol.md §11); absent when it does not say. */
  batch?: boolean;
  /**
   * The atomic groups the kernel still holds and will finish (docs/protocol.md §12); every other
   * open group of the kernel is discarded by this init. Absent: none.
   */
  open_groups?: number[];
  /**
   * The object is (to be) coherent (docs/protocol.md §10): fixed with the page size by the first
   * init of a writer; a later init naming the other mode is refused. Absent: either mode.
   */
  coherent?: boolean;
}
export interface DataRequestMessage {
  type: "memory_object_data_request";
  id: number;
  offset: number;
  length: number;
  desired_access: number;
}
export interface DataUnlockMessage {
  type: "memory_object_data_unlock";
  id: number;
  offset: number;
  length: number;
  desired_access: number;
}
export interface DataReturnMessage {
  type: "memory_object_data_return";
  id: number;
  offset: number;
  length: number;
  dirty: boolean;
  kernel_copy: boolean;
  /** The pages are staged in this atomic group until its synchronize (docs/protocol.md §12). */
  group?: number;
  /** The page bytes carried after the binary frame's header. */
  data: Uint8Array;
}
export interface SynchronizeMessage {
  type: "memory_object_synchronize";
  id: number;
  offset: number;
  length: number;
  sync_flags: number;
  /** Commits this atomic group at the synchronize's seqno first (docs/protocol.md §12). */
  group?: number;
}
export interface LockCompletedMessage {
  type: "memory_object_lock_completed";
  id: number;
  lock_id: number;
  offset: number;
  length: number;
}
export interface TerminateMessage {
  type: "memory_object_terminate";
  id: number;
}
/** Sets the object's size in bytes (docs/protocol.md §13). */
export interface SetSizeMessage {
  type: "memory_object_set_size";
  id: number;
  size: number;
  /** Staged in this atomic group until its synchronize (docs/protocol.md §12). */
  group?: number;
}
export interface ReceivedMessage {
  type: "received";
  id: number;
  mid: number;
}

export type KernelMessage =
  | InitMessage
  | DataRequestMessage
  | DataUnlockMessage
  | DataReturnMessage
  | SynchronizeMessage
  | LockCompletedMessage
  | TerminateMessage
  | SetSizeMessage
  | ReceivedMessage;

export type KernelMessageType = KernelMessage["type"];

/** Messages that change object state: applied once per id, acked (docs/protocol.md §3). */
export const STATE_CHANGING_TYPES: ReadonlySet<KernelMessageType> = new Set([
  "memory_object_data_return",
  "memory_object_synchronize",
  "memory_object_lock_completed",
  "memory_object_terminate",
  "memory_object_set_size",
]);

type Fields = Record<string, unknown>;
type Parser = (fields: Fields, payload: Uint8Array | null) => KernelMessage;

const parsers: { [T in KernelMessageType]: Parser } = {
  memory_object_init: (f) => ({
    type: "memory_object_init",
    id: readPositive(f, "id"),
    page_size: readPageSize(f),
    received_mid: readCount(f, "received_mid"),
    ...(f.batch !== undefined && { batch: readBoolean(f, "batch") }),
    ...(f.open_groups !== undefined && { open_groups: readGroups(f, "open_groups") }),
    ...(f.coherent !== undefined && { coherent: readBoolean(f, "coherent") }),
  }),
  memory_object_data_request: (f) => ({
    type: "memory_object_data_request",
    id: readPositive(f, "id"),
    offset: readCount(f, "offset"),
    length: readCount(f, "length"),
    desired_access: readProtection(f, "desired_access"),
  }),
  memory_object_data_unlock: (f) => ({
    type: "memory_object_data_unlock",
    id: readPositive(f, "id"),
    offset: readCount(f, "offset"),
    length: readCount(f, "length"),
    desired_access: readProtection(f, "desired_access"),
  }),
  memory_object_data_return: (f, payload) => {
    const message: DataReturnMessage = {
      type: "memory_object_data_return",
      id: readPositive(f, "id"),
      offset: readCount(f, "offset"),
      length: readCount(f, "length"),
      dirty: readBoolean(f, "dirty"),
      kernel_copy: readBoolean(f, "kernel_copy"),
      ...readGroup(f),
      data: payload ?? new Uint8Array(0),
    };
    if (payload === null) {
      throw invalidField("memory_object_data_return", "must be a binary frame carrying the pages");
    }
    if (payload.byteLength !== message.length) {
      throw invalidField(
        "length",
        `(${message.length}) must equal the payload size (${payload.byteLength})`,
      );
    }
    return message;
  },
  memory_object_synchronize: (f) => ({
    type: "memory_object_synchronize",
    id: readPositive(f, "id"),
    offset: readCount(f, "offset"),
    length: readCount(f, "length"),
    sync_flags: readSyncFlags(f),
    ...readGroup(f),
  }),
  memory_object_lock_completed: (f) => ({
    type: "memory_object_lock_completed",
    id: readPositive(f, "id"),
    lock_id: readPositive(f, "lock_id"),
    offset: readCount(f, "offset"),
    length: readCount(f, "length"),
  }),
  memory_object_terminate: (f) => ({ type: "memory_object_terminate", id: readPositive(f, "id") }),
  memory_object_set_size: (f) => ({
    type: "memory_object_set_size",
    id: readPositive(f, "id"),
    size: readCount(f, "size"),
    ...readGroup(f),
  }),
  received: (f) => ({ type: "received", id: readPositive(f, "id"), mid: readCount(f, "mid") }),
};

/** The optional `group` of docs/protocol.md §12, as a field to spread into the message. */
function readGroup(fields: Fields): { group?: number } {
  return fields.group === undefined ? {} : { group: readPositive(fields, "group") };
}

/**
 * Checks a decoded frame against docs/protocol.md §4 and returns the typed message.
 *
 * @example const message = parseKernelMessage(decodeFrame(event.data));
 */
export function parseKernelMessage(frame: Frame): KernelMessage {
  const { type } = frame.header;
  if (typeof type !== "string") throw invalidField("type", "must be a string");
  if (!Object.hasOwn(parsers, type)) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "unknown_type",
      `unknown message type "${type}"`,
    );
  }
  return parsers[type as KernelMessageType](frame.header, frame.payload);
}

/** The message's `id` if it has a valid one, for the `reply_to` of an error (docs/protocol.md §8). */
export function peekId(header: Record<string, unknown> | undefined): number | null {
  const id = header?.id;
  return typeof id === "number" && Number.isSafeInteger(id) && id > 0 ? id : null;
}

/** `sync_flags` of docs/protocol.md §6.3: known bits only, never SYNCHRONOUS with ASYNCHRONOUS. */
export function readSyncFlags(fields: Fields): number {
  const flags = fields.sync_flags;
  if (typeof flags !== "number" || !Number.isSafeInteger(flags) || flags < 0) {
    throw invalidField("sync_flags", "must be a non-negative integer of VM_SYNC_* bits");
  }
  // Subtract rather than mask with ~KNOWN_BITS: bitwise operators see only the low 32 bits, so
  // 2^32 + 2 would pass as SYNCHRONOUS.
  const undefinedBits = flags - (flags & VM_SYNC_KNOWN_BITS);
  if (undefinedBits !== 0) {
    throw invalidField("sync_flags", `has undefined bits 0x${undefinedBits.toString(16)}`);
  }
  if ((flags & VM_SYNC_SYNCHRONOUS) !== 0 && (flags & VM_SYNC_ASYNCHRONOUS) !== 0) {
    throw invalidField(
      "sync_flags",
      "must not set both VM_SYNC_SYNCHRONOUS and VM_SYNC_ASYNCHRONOUS",
    );
  }
  return flags;
}
