/**
 * Control sockets for the commands that act as a kernel (`put`, `watch`). `KernelConnection`
 * retries a failed connect forever, which suits a long-lived kernel but not a command someone
 * waits on: here a first connect that does not complete in time, or an outage that lasts too
 * long, ends the command with "cannot reach".
 */
import { KernelConnection } from "../connection";
import { EXIT } from "./exit-codes";
import { CliError, unreachable } from "./failure";
import type { GlobalOptions } from "./options";

export interface KernelTarget {
  globals: GlobalOptions;
  object: string;
  kernel: string;
  pageSize: number;
}

/** How long a first connect, and later a reconnect, may take before the command gives up. */
const CONNECT_TIMEOUT_MS = 15_000;

/** Connects and initialises, or throws the unreachable error after `timeoutMs`. */
export async function openKernel(
  target: KernelTarget,
  timeoutMs = CONNECT_TIMEOUT_MS,
): Promise<KernelConnection> {
  if (typeof globalThis.WebSocket !== "function") {
    throw new CliError(
      EXIT.FAILURE,
      "this command needs a global WebSocket: run it on Node 22 or later",
    );
  }
  const connecting = KernelConnection.connect({
    url: target.globals.url,
    token: target.globals.token,
    object: target.object,
    kernel: target.kernel,
    pageSize: target.pageSize,
    backoff: { initialMs: 100, maxMs: 2_000 },
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(unreachableError(target.globals.url, timeoutMs));
    }, timeoutMs);
  });
  try {
    return await Promise.race([connecting, timeout]);
  } finally {
    clearTimeout(timer);
    // The connect keeps retrying after losing the race (until the process exits, see cli.ts);
    // should it still succeed, it is closed at once.
    if (timedOut)
      connecting.then(
        (connection) => connection.close(),
        () => {},
      );
  }
}

/**
 * Rejects once the connection has been down for `timeoutMs` at a stretch; meant to be raced
 * against a command's work. The returned `stop` ends the watch.
 */
export function watchOutage(
  connection: KernelConnection,
  url: string,
  timeoutMs = CONNECT_TIMEOUT_MS,
): { outage: Promise<never>; stop(): void } {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let fail: (error: Error) => void = () => {};
  const outage = new Promise<never>((_, reject) => (fail = reject));
  outage.catch(() => {}); // raced by the caller; unobserved when the work wins
  const offDown = connection.on("disconnected", () => {
    timer ??= setTimeout(() => fail(unreachableError(url, timeoutMs)), timeoutMs);
  });
  const offUp = connection.on("connected", () => {
    if (timer) clearTimeout(timer);
    timer = null;
  });
  return {
    outage,
    stop() {
      offDown();
      offUp();
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * memory_object_terminate, so the manager forgets this kernel (its acks and outbox are of no
 * use to a finished command), bounded in time; then the socket is closed in any case.
 */
export async function leave(connection: KernelConnection, timeoutMs = 2_000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      connection.terminate(),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
  } catch {
    // Already closed, or the object deleted: there is nothing left to forget.
  } finally {
    clearTimeout(timer);
    connection.close();
  }
}

function unreachableError(url: string, timeoutMs: number): CliError {
  const failure = unreachable(url, `no control socket after ${timeoutMs / 1000} s`);
  return new CliError(failure.exitCode, failure.message);
}
