/** The error a client call rejects with when the manager answers `error` or `data_error`. */
import type { ErrorMessage, KernReturn } from "../schema";

export class KernReturnError extends Error {
  /** Mach's `kern_return_t`: `KERN_INVALID_ARGUMENT` 4, `KERN_MEMORY_ERROR` 10, … */
  readonly kernReturn: KernReturn;
  /** The manager's short reason (`bad_field`, `storage_failed`, …). */
  readonly code: string;
  /** The seqno the rejected message consumed, when known. */
  readonly seqno: number | null;

  constructor(kernReturn: KernReturn, code: string, message: string, seqno: number | null = null) {
    super(message);
    this.name = "KernReturnError";
    this.kernReturn = kernReturn;
    this.code = code;
    this.seqno = seqno;
  }

  static from(message: Pick<ErrorMessage, "kern_return" | "code" | "message" | "seqno">) {
    return new KernReturnError(message.kern_return, message.code, message.message, message.seqno);
  }
}

/** A call that cannot go on: the client was closed, replaced by another socket, or the object deleted. */
export class ConnectionClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionClosedError";
  }
}
