/** The only public surface of `schema/` (CONTRIBUTING.md §7): constants, messages, codec, errors. */
export * from "./constants";
export {
  ProtocolError,
  bodyTooLarge,
  errorFrame,
  errorResponse,
  httpStatusOf,
  internalError,
  invalidField,
  missingRight,
  modeMismatch,
  objectDeleted,
  pageSizeMismatch,
  storageFailed,
  toProtocolError,
  type ErrorBody,
  type ErrorCode,
} from "./protocol-error";
export { DIRECTORY_PATH, HTTP_PATHS, isPathOf, objectPath, type HttpPath } from "./http-paths";
export {
  DIRECTORY_PREFIX,
  entryOf,
  manifestKey,
  manifestMetadata,
  type DirectoryEntry,
} from "./directory";
export { parseObjectName, parseKernelId } from "./names";
export { encodeFrame, decodeFrame, type Frame } from "./frame";
export { decodeFrameOrBatch, encodeBatch, isBatch, type Batch, type BatchEntry } from "./batch";
export { isPageSize, readCount } from "./fields";
export {
  parseKernelMessage,
  peekId,
  readSyncFlags,
  STATE_CHANGING_TYPES,
  type KernelMessage,
  type KernelMessageType,
  type InitMessage,
  type DataRequestMessage,
  type DataUnlockMessage,
  type DataReturnMessage,
  type SynchronizeMessage,
  type LockCompletedMessage,
  type TerminateMessage,
  type SetSizeMessage,
  type ReceivedMessage,
} from "./kernel-messages";
export {
  checkPageRange,
  checkSize,
  checkWithinObject,
  pageSpanOf,
  spansOverlap,
  type ObjectGeometry,
  type PageSpan,
} from "./ranges";
export type * from "./manager-messages";
export {
  signToken,
  verifyToken,
  grantCovers,
  parseRights,
  TokenError,
  RIGHTS,
  type Grant,
  type Right,
} from "./token";
