/**
 * The numbers of docs/protocol.md §7, with Mach's names. Shared by the Worker, the Durable Object
 * and the client, so every side means the same thing by the same value.
 */

export const KERN_SUCCESS = 0;
export const KERN_INVALID_ADDRESS = 1;
export const KERN_PROTECTION_FAILURE = 2;
export const KERN_NO_SPACE = 3;
export const KERN_INVALID_ARGUMENT = 4;
export const KERN_FAILURE = 5;
export const KERN_RESOURCE_SHORTAGE = 6;
export const KERN_NO_ACCESS = 8;
export const KERN_MEMORY_ERROR = 10;
export const KERN_ABORTED = 14;
export const KERN_MEMORY_PRESENT = 23;

export type KernReturn =
  | typeof KERN_SUCCESS
  | typeof KERN_INVALID_ADDRESS
  | typeof KERN_PROTECTION_FAILURE
  | typeof KERN_NO_SPACE
  | typeof KERN_INVALID_ARGUMENT
  | typeof KERN_FAILURE
  | typeof KERN_RESOURCE_SHORTAGE
  | typeof KERN_NO_ACCESS
  | typeof KERN_MEMORY_ERROR
  | typeof KERN_ABORTED
  | typeof KERN_MEMORY_PRESENT;

export const VM_PROT_NONE = 0;
export const VM_PROT_READ = 1;
export const VM_PROT_WRITE = 2;
export const VM_PROT_EXECUTE = 4;
export const VM_PROT_ALL = 7;
export const VM_PROT_NO_CHANGE = 8;

export const VM_SYNC_ASYNCHRONOUS = 0x01;
export const VM_SYNC_SYNCHRONOUS = 0x02;
export const VM_SYNC_INVALIDATE = 0x04;
export const VM_SYNC_KILLPAGES = 0x08;
export const VM_SYNC_DEACTIVATE = 0x10;
export const VM_SYNC_CONTIGUOUS = 0x20;
export const VM_SYNC_REUSABLEPAGES = 0x40;
/** Every bit a synchronize may carry (docs/protocol.md §6.3); any other bit is an error. */
export const VM_SYNC_KNOWN_BITS = 0x7f;

export const MEMORY_OBJECT_RETURN_NONE = 0;
export const MEMORY_OBJECT_RETURN_DIRTY = 1;
export const MEMORY_OBJECT_RETURN_ALL = 2;
export const MEMORY_OBJECT_RETURN_ANYTHING = 3;

export const MEMORY_OBJECT_COPY_NONE = 0;
export const MEMORY_OBJECT_COPY_CALL = 1;
export const MEMORY_OBJECT_COPY_DELAY = 2;
export const MEMORY_OBJECT_COPY_TEMPORARY = 3;
export const MEMORY_OBJECT_COPY_SYMMETRIC = 4;

/** Page sizes an object may have (docs/protocol.md §1). */
export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 65536;
/** The page size of an object whose first message is an HTTP write without `page_size`. */
export const DEFAULT_PAGE_SIZE = 4096;

/**
 * The most messages one batch frame may hold (docs/protocol.md §11), either way: a kernel's batch
 * of more is a frame that cannot be parsed, and the manager sends none larger.
 */
export const MAX_BATCH_MESSAGES = 256;

/**
 * The most atomic groups (docs/protocol.md §12) one kernel may have open at once, and so the
 * longest `open_groups` list: a kernel opening one more is refused (KERN_RESOURCE_SHORTAGE).
 */
export const MAX_OPEN_GROUPS = 64;

/** The kernel id that HTTP requests act as (docs/protocol.md §9); sockets may not claim it. */
export const HTTP_KERNEL = "http";

/** WebSocket close codes the manager uses. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_REPLACED = 4409;
/** The socket's token expired: the kernel has departed; reconnect with a fresh token. */
export const CLOSE_TOKEN_EXPIRED = 4401;
/**
 * A kernel of a coherent object did not answer a lock request within lock_timeout: it has
 * departed, dropped from every page it held (docs/protocol.md §10.5).
 */
export const CLOSE_LOCK_TIMEOUT = 4408;

/** The header by which the Worker tells a Durable Object the object name it serves. */
export const OBJECT_NAME_HEADER = "x-edgepager-object";
/** The header by which the Worker tells a Durable Object what the caller's token grants. */
export const GRANT_HEADER = "x-edgepager-grant";
/**
 * The header by which the Worker names the operation (schema/http-api.ts) of a request it
 * forwards with `fetch` (synchronize; the rest are RPC calls), so the object never parses the path.
 */
export const OPERATION_HEADER = "x-edgepager-operation";
