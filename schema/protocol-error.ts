/**
 * The one error type of the protocol (CONTRIBUTING.md §5). Handlers throw it; `toProtocolError`
 * turns anything thrown into one, and `errorResponse` and `errorFrame` into the wire forms of
 * docs/protocol.md §9 (HTTP) and docs/protocol.md §5 (sockets).
 */
import {
  KERN_ABORTED,
  KERN_FAILURE,
  KERN_INVALID_ARGUMENT,
  KERN_MEMORY_ERROR,
  KERN_PROTECTION_FAILURE,
  type KernReturn,
} from "./constants";
import type { ErrorMessage } from "./manager-messages";

/** Short machine-readable reasons, carried as `code` beside the human `message`. */
export type ErrorCode =
  | "bad_json"
  | "bad_frame"
  | "bad_field"
  | "bad_name"
  | "unknown_type"
  | "not_initialized"
  | "already_initialized"
  | "page_size_mismatch"
  | "mode_mismatch"
  | "mid_ahead"
  | "out_of_range"
  | "too_large"
  | "journal_full"
  | "storage_full"
  | "too_fragmented"
  | "too_many_syncs"
  | "too_many_kernels"
  | "too_many_groups"
  | "group_discarded"
  | "not_writer"
  | "too_many_waiting"
  | "too_many_observers"
  | "outbox_full"
  | "too_many_errors"
  | "storage_failed"
  | "not_found"
  | "unauthorized"
  | "forbidden"
  | "auth_unconfigured"
  | "origin_not_allowed"
  | "bad_config"
  | "object_deleted"
  | "upgrade_required"
  | "internal";

export class ProtocolError extends Error {
  constructor(
    readonly kernReturn: KernReturn,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ProtocolError";
  }

  /** The HTTP error body of docs/protocol.md §9. */
  toJSON(): { error: ErrorBody } {
    return { error: { code: this.code, kern_return: this.kernReturn, message: this.message } };
  }

  /** The error again from its body, as it crossed from the object to the Worker (RPC). */
  static fromJSON({ code, kern_return, message }: ErrorBody): ProtocolError {
    return new ProtocolError(kern_return, code, message);
  }
}

export interface ErrorBody {
  code: ErrorCode;
  kern_return: KernReturn;
  message: string;
}

/**
 * Anything thrown, as the `ProtocolError` it answers with: itself, or (logged under `context`,
 * revealing nothing but its kind) an internal error with `message`.
 *
 * @example toProtocolError(new TypeError("boom"), "HTTP operation failed") // internal, 500
 */
export function toProtocolError(
  error: unknown,
  context = "unexpected error",
  message = "internal error",
): ProtocolError {
  if (error instanceof ProtocolError) return error;
  console.error(context, error);
  return internalError(message);
}

/**
 * The one HTTP answer to an error (docs/protocol.md §9): its JSON body, the status of its code.
 *
 * @example return errorResponse(error, "HTTP operation failed");
 */
export function errorResponse(error: unknown, context?: string): Response {
  const protocolError = toProtocolError(error, context);
  return Response.json(protocolError.toJSON(), { status: httpStatusOf(protocolError) });
}

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  page_size_mismatch: 409,
  mode_mismatch: 409,
  too_large: 413,
  not_found: 404,
  unauthorized: 401,
  forbidden: 403,
  auth_unconfigured: 503,
  origin_not_allowed: 403,
  // A wrangler.toml var the Worker checks at use is malformed: the operator must fix it.
  bad_config: 500,
  object_deleted: 409,
  upgrade_required: 426,
  journal_full: 503,
  // The object holds all it can (its database's safe share of 10 GB): retrying will not help.
  storage_full: 507,
  // The range is spread over more segments than one request may read: ask for less.
  too_fragmented: 422,
  too_many_syncs: 429,
  too_many_waiting: 429,
  too_many_observers: 429,
  too_many_errors: 429,
  too_many_kernels: 503,
  storage_failed: 500,
  internal: 500,
};

/** The HTTP status of docs/protocol.md §9 that an error maps to when it ends an HTTP request. */
export function httpStatusOf(error: ProtocolError): number {
  return STATUS_BY_CODE[error.code] ?? (error.kernReturn === KERN_PROTECTION_FAILURE ? 403 : 400);
}

/**
 * The one socket form of an error (docs/protocol.md §5): the `error` message answering the message
 * of `seqno` (id `replyTo`, or null when it had no valid one).
 */
export function errorFrame(
  error: ProtocolError,
  seqno: number,
  replyTo: number | null,
): ErrorMessage {
  const { kernReturn, code, message } = error;
  return { type: "error", reply_to: replyTo, seqno, kern_return: kernReturn, code, message };
}

/** A failure the caller cannot help: logged where it happened, answered with nothing but its kind. */
export function internalError(message = "internal error"): ProtocolError {
  return new ProtocolError(KERN_FAILURE, "internal", message);
}

/** A body over a byte limit: the Worker by its `content-length`, the object as it counts. */
export function bodyTooLarge(maxBytes: number): ProtocolError {
  return new ProtocolError(
    KERN_INVALID_ARGUMENT,
    "too_large",
    `body must not exceed ${maxBytes} bytes`,
  );
}

/**
 * A token that does not grant what `subject` needs, over HTTP or on a socket (docs/security.md).
 *
 * @example throw missingRight("this request", "write", ["read"]);
 */
export function missingRight(subject: string, right: string, granted: readonly string[]) {
  return new ProtocolError(
    KERN_PROTECTION_FAILURE,
    "forbidden",
    `${subject} needs the ${right} right; the token grants ${granted.join(", ") || "none"}`,
  );
}

/**
 * A field that breaks its rule: `KERN_INVALID_ARGUMENT` naming the field.
 *
 * @example throw invalidField("offset", "must be a multiple of page_size (4096)");
 */
export function invalidField(field: string, rule: string): ProtocolError {
  return new ProtocolError(KERN_INVALID_ARGUMENT, "bad_field", `${field} ${rule}`);
}

/**
 * A page size that differs from the one the object has fixed, from an init or an HTTP write.
 *
 * @example throw pageSizeMismatch(8192, 4096); // 409 over HTTP
 */
export function pageSizeMismatch(asked: number, fixed: number): ProtocolError {
  return new ProtocolError(
    KERN_INVALID_ARGUMENT,
    "page_size_mismatch",
    `page_size (${asked}) differs from the object's page size (${fixed})`,
  );
}

/**
 * A mode (docs/protocol.md §10) that differs from the one the object has fixed, from an init or
 * an HTTP write.
 *
 * @example throw modeMismatch(true, false); // 409 over HTTP
 */
export function modeMismatch(askedCoherent: boolean, coherent: boolean): ProtocolError {
  const mode = (c: boolean) => (c ? "coherent" : "not coherent");
  return new ProtocolError(
    KERN_INVALID_ARGUMENT,
    "mode_mismatch",
    `coherent (${askedCoherent}) differs from the object's mode (${mode(coherent)}), fixed with its page size`,
  );
}

/**
 * Every R2 attempt failed: the synchronize that waited on it fails (docs/protocol.md §6.9), over
 * HTTP or through a kernel's outbox.
 */
export function storageFailed(reason: string): ProtocolError {
  return new ProtocolError(KERN_MEMORY_ERROR, "storage_failed", reason);
}

/**
 * The object was deleted while a request was under way; `when` says at which point.
 *
 * @example throw objectDeleted("while this synchronize waited");
 */
export function objectDeleted(when: string): ProtocolError {
  return new ProtocolError(KERN_ABORTED, "object_deleted", `the object was deleted ${when}`);
}
