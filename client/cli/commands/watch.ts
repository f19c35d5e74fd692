/**
 * `edgepager watch OBJECT`: connects as a kernel and prints what the manager tells it, one line
 * per event, until Ctrl-C (then memory_object_terminate, exit 0) or until the object is deleted.
 * The manager sends lock requests only to kernels that cache pages (docs/protocol.md §6.6), so
 * `--cache` faults a range in first; the watcher answers each lock request at once.
 */
import { InvalidArgumentError, type Command } from "commander";
import type { KernelConnection } from "../../connection";
import { HttpClient } from "../../http";
import { DEFAULT_PAGE_SIZE, type ReadyMessage } from "../../../schema";
import { describeFailure } from "../failure";
import { interrupted } from "../interrupt";
import { leave, openKernel } from "../kernel";
import { defaultKernelId, globalsOf, parseCount, parseKernelId, parseObjectName } from "../options";

interface WatchOptions {
  kernel?: string;
  cache?: { offset: number; length: number };
}

type Print = (event: string, fields: Record<string, unknown>) => void;

export function registerWatch(program: Command): void {
  program
    .command("watch")
    .summary("connect as a kernel and print the manager's events until Ctrl-C")
    .description(
      "Connect to an object as a kernel and print each event as it happens: connected, " +
        "disconnected, completion, lock_request, flush, destroyed (one JSON object per line " +
        "with --json). Runs until Ctrl-C, which terminates the kernel, or until the object is " +
        "deleted. The kernel id defaults to watch-<host>-<pid>.",
    )
    .argument("<object>", "object name", parseObjectName)
    .option("--kernel <id>", "kernel id to connect as (default: watch-<host>-<pid>)", parseKernelId)
    .option(
      "--cache <offset:length>",
      "fault in this page-aligned range first, so INVALIDATE syncs send this kernel lock requests",
      parseRange,
    )
    .action(async (object: string, options: WatchOptions, command: Command) => {
      const globals = globalsOf(command);
      const status = await new HttpClient(globals.url, globals.token).stat(object);
      const kernel = options.kernel ?? defaultKernelId("watch");
      const pageSize = status.page_size ?? DEFAULT_PAGE_SIZE;
      const connection = await openKernel({ globals, object, kernel, pageSize });
      const print: Print = (event, fields) =>
        process.stdout.write(
          globals.json
            ? `${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`
            : `${new Date().toISOString()}  ${event.padEnd(12)}  ${keyValues(fields)}\n`,
        );
      const interrupt = interrupted();
      let end: (error: Error | null) => void = () => {};
      const ended = new Promise<Error | null>((resolve) => (end = resolve));
      const unsubscribe = subscribe(connection, print, globals.url, end);
      try {
        printReady(print, connection.ready!);
        if (options.cache) await cacheRange(connection, options.cache, print);
        const error = await Promise.race([ended, interrupt.signal.then(() => null)]);
        if (error) throw error;
      } finally {
        interrupt.dispose();
        unsubscribe();
        await leave(connection);
      }
    });
}

/** Prints every event; `end` is called when watching cannot go on (or need not). */
function subscribe(
  connection: KernelConnection,
  print: Print,
  url: string,
  end: (error: Error | null) => void,
): () => void {
  const offs = [
    connection.on("connected", (ready) => printReady(print, ready)),
    // One per outage (docs/client.md §1.1), then one `reconnecting` per attempt.
    connection.on("disconnected", ({ code, reason }) => {
      print("disconnected", { code, reason });
      // A close the connection does not recover from (replaced, policy) rejects this.
      connection.whenReady().catch((error: Error) => end(error));
    }),
    connection.on("reconnecting", ({ attempt, delayMs }) =>
      print("reconnecting", { attempt, delay_ms: delayMs }),
    ),
    connection.on("completion", (c) =>
      print("completion", {
        mid: c.mid,
        reply_to: c.reply_to,
        seqno: c.seqno,
        offset: c.offset,
        length: c.length,
      }),
    ),
    connection.on("lock_request", ({ type: _type, ...lock }) => {
      print("lock_request", lock);
      // Nothing cached here is dirty: answer at once so an INVALIDATE need not wait.
      connection.lockCompleted(lock.lock_id, lock.offset, lock.length).catch(() => {});
    }),
    connection.on("flush", () => print("flush", {})),
    connection.on("destroyed", ({ reason }) => {
      print("destroyed", { reason });
      // Reconnecting would create the object afresh under the watcher: stop here.
      connection.close();
      end(null);
    }),
    connection.on("error", (error) => print("error", failureFields(error, url))),
  ];
  return () => offs.forEach((off) => off());
}

function printReady(print: Print, ready: ReadyMessage): void {
  print("connected", {
    kernel: ready.kernel,
    page_size: ready.page_size,
    max_transfer: ready.max_transfer,
    last_id: ready.last_id,
    seqno: ready.seqno,
    flush: ready.flush,
  });
  if (ready.flush) print("flush", {});
}

/** data_request over the range, max_transfer at a time: the manager now counts it as cached. */
async function cacheRange(
  connection: KernelConnection,
  range: { offset: number; length: number },
  print: Print,
): Promise<void> {
  const maxTransfer = connection.ready!.max_transfer;
  for (let at = 0; at < range.length; at += maxTransfer) {
    await connection.dataRequest(range.offset + at, Math.min(maxTransfer, range.length - at));
  }
  print("cached", range);
}

function failureFields(error: Error, url: string): Record<string, unknown> {
  const failure = describeFailure(error, url);
  return { message: failure.message, ...(failure.kernReturn ?? {}) };
}

/** `a=1 b="two words"`: values quoted only when they need it. */
function keyValues(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => {
      const text = String(value);
      return `${key}=${/^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)}`;
    })
    .join(" ");
}

function parseRange(value: string): { offset: number; length: number } {
  const match = /^([^:]+):([^:]+)$/.exec(value);
  if (!match) throw new InvalidArgumentError("expected OFFSET:LENGTH, e.g. 0:65536.");
  return { offset: parseCount(match[1]!), length: parseCount(match[2]!) };
}
