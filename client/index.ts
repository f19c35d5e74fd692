/**
 * The kernel-side client of edgepager: the package's public surface. Runs in Node 22+ and in
 * browsers (standard WebSocket, fetch, Uint8Array).
 */
export {
  KernelConnection,
  controlUrl,
  type KernelOptions,
  type KernelEvents,
  type DataReply,
} from "./connection";
export { PageCache, type PageCacheOptions, type CommitOptions } from "./page-cache";
export { type CallOptions } from "./call-options";
export {
  HttpClient,
  type ObjectList,
  type ObjectStatus,
  type OutstandingSync,
  type SetSizeResult,
} from "./http";
export { KernReturnError, ConnectionClosedError, CallAbortedError } from "./errors";
export {
  VM_SYNC_ASYNCHRONOUS,
  VM_SYNC_SYNCHRONOUS,
  VM_SYNC_INVALIDATE,
  VM_PROT_NONE,
  VM_PROT_READ,
  VM_PROT_WRITE,
  VM_PROT_ALL,
  KERN_SUCCESS,
  KERN_INVALID_ADDRESS,
  KERN_PROTECTION_FAILURE,
  KERN_INVALID_ARGUMENT,
  KERN_RESOURCE_SHORTAGE,
  KERN_MEMORY_ERROR,
  MAX_OPEN_GROUPS,
  type ReadyMessage,
  type SynchronizeCompletedMessage,
  type LockRequestMessage,
  type AckMessage,
} from "../schema";
