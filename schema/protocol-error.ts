/**
 * The one error type of the protocol (style.md §5). Handlers throw it; the Worker's `onError`
 * and the socket's message loop turn it into the wire forms of protocol.md §5 and §9.
 */
import { KERN_INVALID_ARGUMENT, type KernReturn } from "./constants";

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
  | "out_of_range"
  | "too_large"
  | "journal_full"
  | "storage_failed"
  | "not_found"
  | "upgrade_required"
  | "internal";

export class ProtocolError extends Error {
  constructor(
    readonly kernReturn: KernReturn,
    readonly code: ErrorCode,
    message: string,
    /** The HTTP status this error maps to when it ends an HTTP request. */
    readonly status: number = 400,
  ) {
    super(message);
    this.name = "ProtocolError";
  }

  /** The HTTP error body of protocol.md §9. */
  toJSON(): { error: { code: ErrorCode; kern_return: KernReturn; message: string } } {
    return { error: { code: this.code, kern_return: this.kernReturn, message: this.message } };
  }
}

/**
 * A field that breaks its rule: `KERN_INVALID_ARGUMENT` naming the field.
 *
 * @example throw invalidField("offset", "must be a multiple of page_size (4096)");
 */
export function invalidField(field: string, rule: string): ProtocolError {
  return new ProtocolError(KERN_INVALID_ARGUMENT, "bad_field", `${field} ${rule}`);
}
