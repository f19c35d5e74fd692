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

/**
 * A call given up by its caller: its `signal` aborted or its `timeoutMs` passed. Named
 * `AbortError` like the platform's, so `error.name === "AbortError"` checks work; `call` names the
 * call. A message the call had not sent yet is never sent; one already sent may still take effect.
 */
export class CallAbortedError extends Error {
  constructor(
    /** The call given up, e.g. `"commit"` or `"dataReturn"`. */
    readonly call: string,
    /** True when `timeoutMs` passed; false when the signal aborted. */
    readonly timedOut: boolean,
    /** The signal's reason, if it gave one. */
    override readonly cause?: unknown,
  ) {
    super(timedOut ? `${call} timed out` : `${call} was aborted`);
    this.name = "AbortError";
  }
}
