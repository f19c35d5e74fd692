/**
 * Deadlines and cancellation for every client call (`signal`, `timeoutMs`): checking the options,
 * and turning an abort or a timeout into one `CallAbortedError` naming the call. Kept apart from
 * the connection and the page cache, which both take these options. Browser-safe.
 */
import { CallAbortedError } from "./errors";

/** What every call of `KernelConnection` and `PageCache` takes besides its own arguments. */
export interface CallOptions {
  /** Aborting it rejects the call at once with a `CallAbortedError`. */
  signal?: AbortSignal;
  /** Rejects the call with a `CallAbortedError` (`timedOut: true`) after this many ms. */
  timeoutMs?: number;
}

/**
 * Throws a `TypeError` naming a bad option, or the `CallAbortedError` of a signal already aborted
 * (so a call never starts, and sends nothing, once given up).
 */
export function checkCallOptions(call: string, options: CallOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${call}: the options must be an object`);
  }
  const { signal, timeoutMs } = options;
  if (signal !== undefined && !isSignal(signal)) {
    throw new TypeError(`${call}: signal must be an AbortSignal`);
  }
  if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs >= 0)) {
    throw new TypeError(`${call}: timeoutMs must be a number of milliseconds, 0 or more`);
  }
  if (signal?.aborted) throw abortedBy(call, signal);
}

/**
 * Calls `onAbort` once if the signal aborts or the timeout passes, whichever first; returns the
 * function that stops watching (call it when the call settles). Check the options first.
 */
export function watchCall(
  call: string,
  options: CallOptions,
  onAbort: (error: CallAbortedError) => void,
): () => void {
  const { signal, timeoutMs } = options;
  if (!signal && timeoutMs === undefined) return () => {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", aborted);
  };
  const aborted = () => {
    stop();
    onAbort(abortedBy(call, signal!));
  };
  signal?.addEventListener("abort", aborted, { once: true });
  if (timeoutMs !== undefined) {
    timer = setTimeout(() => {
      stop();
      onAbort(new CallAbortedError(call, true));
    }, timeoutMs);
  }
  return stop;
}

/**
 * One signal for a call made of several (a commit's returns and synchronize): it aborts, with the
 * outer call's `CallAbortedError` as its reason, when the caller's signal aborts or the timeout
 * passes. The inner calls reject with that same error. `done` stops the timer.
 */
export function callSignal(
  call: string,
  options: CallOptions,
): { signal: AbortSignal | undefined; done(): void } {
  checkCallOptions(call, options);
  if (!options.signal && options.timeoutMs === undefined) {
    return { signal: undefined, done: () => {} };
  }
  const controller = new AbortController();
  const done = watchCall(call, options, (error) => controller.abort(error));
  return { signal: controller.signal, done };
}

/** The error for a call whose signal aborted: the signal's own if it is one of ours. */
function abortedBy(call: string, signal: AbortSignal): CallAbortedError {
  const reason: unknown = signal.reason;
  return reason instanceof CallAbortedError ? reason : new CallAbortedError(call, false, reason);
}

function isSignal(value: unknown): value is AbortSignal {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as AbortSignal).aborted === "boolean" &&
    typeof (value as AbortSignal).addEventListener === "function"
  );
}
