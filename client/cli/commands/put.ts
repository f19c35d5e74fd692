/**
 * `edgepager put OBJECT FILE`: uploads a file as a kernel would write it back. It sends
 * memory_object_data_return frames of max_transfer bytes straight from the file (no page cache:
 * every page is dirty anyway), waits on `connection.capacity()` between frames so at most a few
 * MiB are unacked, then a SYNCHRONOUS memory_object_synchronize, so when it exits 0 the whole
 * file is in R2. The last partial page is zero-padded. Finally memory_object_terminate.
 */
import { open, stat, type FileHandle } from "node:fs/promises";
import { InvalidArgumentError, type Command } from "commander";
import type { KernelConnection } from "../../connection";
import { KernReturnError } from "../../errors";
import { HttpClient } from "../../http";
import {
  DEFAULT_PAGE_SIZE,
  KERN_RESOURCE_SHORTAGE,
  MAX_PAGE_SIZE,
  MIN_PAGE_SIZE,
  VM_SYNC_SYNCHRONOUS,
} from "../../../schema";
import { EXIT } from "../exit-codes";
import { CliError } from "../failure";
import { interrupted } from "../interrupt";
import { leave, openKernel, watchOutage } from "../kernel";
import { defaultKernelId, globalsOf, parseCount, parseKernelId, parseObjectName } from "../options";
import { formatBytes, printResult } from "../output";
import { ProgressBar } from "../progress";

interface PutOptions {
  offset: number;
  kernel?: string;
  pageSize?: number;
}

export function registerPut(program: Command): void {
  program
    .command("put")
    .summary("upload a file as pages, then synchronize it (SYNCHRONOUS)")
    .description(
      "Upload a file into an object as memory_object_data_return frames over a control " +
        "socket, then memory_object_synchronize(SYNCHRONOUS): exit 0 means every byte is in R2. " +
        "The last partial page is zero-padded; when the file makes the object longer, its size " +
        "becomes the file's end. A progress bar shows on a terminal. " +
        "The kernel id defaults to cli-<host>-<pid>; the kernel is terminated at the end.",
    )
    .argument("<object>", "object name", parseObjectName)
    .argument("<file>", "file to upload")
    .option("--offset <bytes>", "where the file starts in the object (page-aligned)", parseCount, 0)
    .option("--kernel <id>", "kernel id to connect as (default: cli-<host>-<pid>)", parseKernelId)
    .option(
      "--page-size <bytes>",
      "page size for a new object (default: the object's, else 4096)",
      parsePageSize,
    )
    .action(async (object: string, file: string, options: PutOptions, command: Command) => {
      const globals = globalsOf(command);
      const size = await fileSize(file);
      const status = await new HttpClient(globals.url, globals.token).stat(object);
      const pageSize = options.pageSize ?? status.page_size ?? DEFAULT_PAGE_SIZE;
      if (options.offset % pageSize !== 0) {
        throw new CliError(
          EXIT.USAGE,
          `--offset must be a multiple of the page size (${pageSize})`,
        );
      }
      const kernel = options.kernel ?? defaultKernelId("cli");
      const started = Date.now();
      const handle = await openFile(file);
      const connection = await openKernel({ globals, object, kernel, pageSize }).catch(
        async (error: unknown) => {
          await handle.close();
          throw error;
        },
      );
      const outage = watchOutage(connection, globals.url);
      const interrupt = interrupted();
      const progress = ProgressBar.forStderr(size, globals.json);
      try {
        const work = upload(connection, handle, size, options.offset, progress);
        work.catch(() => {}); // when the race is lost, its later rejection is expected
        const stopped = interrupt.signal.then(() => {
          throw new CliError(EXIT.INTERRUPTED, "interrupted: the upload is incomplete");
        });
        const { padded, seqno } = await Promise.race([work, outage.outage, stopped]);
        progress.clear();
        const seconds = (Date.now() - started) / 1000;
        printResult(
          globals.json,
          () => describePut(object, size, padded, pageSize, options, seqno, seconds),
          {
            object,
            file,
            kernel,
            offset: options.offset,
            bytes: size,
            padded_bytes: padded,
            page_size: pageSize,
            pages: padded / pageSize,
            seqno,
            seconds,
          },
        );
      } finally {
        progress.clear();
        interrupt.dispose();
        outage.stop();
        await handle.close();
        await leave(connection);
      }
    });
}

function describePut(
  object: string,
  size: number,
  padded: number,
  pageSize: number,
  options: PutOptions,
  seqno: number,
  seconds: number,
): string {
  const rate = formatBytes(size / Math.max(seconds, 0.001));
  return (
    `put ${object}: ${formatBytes(size)} (${size} bytes, ${padded / pageSize} pages of ` +
    `${pageSize}) at offset ${options.offset}, in R2 after ${seconds.toFixed(2)} s ` +
    `(${rate}/s), seqno ${seqno}`
  );
}

/** Frames of max_transfer bytes with backpressure, then the SYNCHRONOUS synchronize. */
async function upload(
  connection: KernelConnection,
  handle: FileHandle,
  size: number,
  offset: number,
  progress: ProgressBar,
): Promise<{ padded: number; seqno: number }> {
  const { page_size: pageSize, max_transfer: maxTransfer, size: sizeBefore } = connection.ready!;
  const state = { acked: 0, failure: null as Error | null };
  const returns: Promise<void>[] = [];
  for (let at = 0; at < size && !state.failure; at += maxTransfer) {
    const length = Math.min(maxTransfer, size - at);
    const chunk = new Uint8Array(roundUp(length, pageSize)); // zeros past the file's end
    await readExactly(handle, chunk.subarray(0, length), at);
    await connection.capacity();
    if (state.failure) break;
    returns.push(
      returnChunk(connection, offset + at, chunk).then(
        () => progress.update((state.acked += length)),
        (error: Error) => void (state.failure ??= error),
      ),
    );
  }
  await Promise.all(returns);
  if (state.failure) throw state.failure;
  progress.update(size, true);
  progress.status(`synchronizing ${formatBytes(size)} (SYNCHRONOUS)...`);
  const padded = roundUp(size, pageSize);
  // The object ends where the file ends (docs/protocol.md §13), not at the padded page, when the
  // file made it longer: `get` then downloads exactly the file.
  const sized = offset + size > sizeBefore ? connection.setSize(offset + size) : null;
  const [completion] = await Promise.all([
    connection.synchronize(offset, padded, VM_SYNC_SYNCHRONOUS),
    sized,
  ]);
  return { padded, seqno: completion.seqno };
}

/**
 * One data_return; a full journal (KERN_RESOURCE_SHORTAGE, docs/protocol.md §8) is a reason to wait
 * for the manager's flush and resend, not to fail the upload.
 */
async function returnChunk(connection: KernelConnection, offset: number, chunk: Uint8Array) {
  for (let attempt = 1; ; attempt++) {
    try {
      await connection.dataReturn(offset, chunk);
      return;
    } catch (error) {
      const shortage =
        error instanceof KernReturnError && error.kernReturn === KERN_RESOURCE_SHORTAGE;
      if (!shortage || attempt >= 8) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** attempt)));
    }
  }
}

function roundUp(bytes: number, pageSize: number): number {
  return Math.ceil(bytes / pageSize) * pageSize;
}

function parsePageSize(value: string): number {
  const size = parseCount(value);
  if (size < MIN_PAGE_SIZE || size > MAX_PAGE_SIZE || (size & (size - 1)) !== 0) {
    throw new InvalidArgumentError(`a power of two from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE}.`);
  }
  return size;
}

async function fileSize(file: string): Promise<number> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new Error("not a regular file");
    return info.size;
  } catch (error) {
    throw new CliError(EXIT.FILE_ERROR, `cannot read ${file}: ${(error as Error).message}`);
  }
}

async function openFile(file: string): Promise<FileHandle> {
  try {
    return await open(file, "r");
  } catch (error) {
    throw new CliError(EXIT.FILE_ERROR, `cannot read ${file}: ${(error as Error).message}`);
  }
}

/** Fills `target` from the file at `position`; a file that shrank meanwhile is an error. */
async function readExactly(handle: FileHandle, target: Uint8Array, position: number) {
  for (let done = 0; done < target.byteLength;) {
    const { bytesRead } = await handle
      .read(target, done, target.byteLength - done, position + done)
      .catch((error: Error) => {
        throw new CliError(EXIT.FILE_ERROR, `cannot read the file: ${error.message}`);
      });
    if (bytesRead === 0) throw new CliError(EXIT.FILE_ERROR, "the file shrank while being read");
    done += bytesRead;
  }
}
