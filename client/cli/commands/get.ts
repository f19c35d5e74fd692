/**
 * `edgepager get OBJECT`: reads bytes over HTTP (GET …/pages, docs/protocol.md §9) to stdout or a
 * file, in requests of at most 64 MiB (the Worker's limit per request), one at a time so memory
 * stays bounded by one chunk whatever the range.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import type { Writable } from "node:stream";
import { InvalidArgumentError, type Command } from "commander";
import { HttpClient } from "../../http";
import { EXIT } from "../exit-codes";
import { CliError } from "../failure";
import { globalsOf, parseCount, parseObjectName, parsePositiveCount } from "../options";
import { formatBytes, printResult } from "../output";

/** The most bytes one HTTP read may ask for (`MAX_BODY_BYTES`). */
const MAX_READ_BYTES = 64 * 1024 * 1024;

interface GetOptions {
  offset: number;
  length?: number;
  output?: string;
  chunkSize: number;
}

export function registerGet(program: Command): void {
  program
    .command("get")
    .summary("read bytes of an object to stdout or a file")
    .description(
      "Read a byte range of an object and write the raw bytes to stdout (redirect it) or to " +
        "--output FILE. Never-written pages read as zeros. The length defaults to the object's " +
        "size (from stat) after --offset.",
    )
    .argument("<object>", "object name", parseObjectName)
    .option("--offset <bytes>", "first byte to read", parseCount, 0)
    .option(
      "--length <bytes>",
      "bytes to read (default: the object's size after --offset)",
      parseCount,
    )
    .option("-o, --output <file>", "write to this file instead of stdout")
    .option(
      "--chunk-size <bytes>",
      "bytes per HTTP request, at most 67108864 (64 MiB)",
      parseChunkSize,
      MAX_READ_BYTES,
    )
    .action(async (object: string, options: GetOptions, command: Command) => {
      const globals = globalsOf(command);
      if (!options.output && process.stdout.isTTY) {
        throw new CliError(
          EXIT.USAGE,
          "refusing to write binary data to a terminal: redirect stdout or use --output FILE",
        );
      }
      const http = new HttpClient(globals.url, globals.token);
      const length = options.length ?? Math.max(0, (await http.stat(object)).size - options.offset);
      const sink = options.output ? await openOutput(options.output) : process.stdout;
      try {
        for (let done = 0; done < length;) {
          const size = Math.min(options.chunkSize, length - done);
          const bytes = await http.read(object, options.offset + done, size);
          await write(sink, bytes, options.output);
          done += size;
        }
      } finally {
        if (sink !== process.stdout) await close(sink as WriteStream, options.output!);
      }
      if (options.output) {
        printResult(
          globals.json,
          () => `wrote ${formatBytes(length)} (${length} bytes) of ${object} to ${options.output}`,
          { object, offset: options.offset, length, output: options.output },
        );
      }
    });
}

function parseChunkSize(value: string): number {
  const size = parsePositiveCount(value);
  if (size > MAX_READ_BYTES) throw new InvalidArgumentError(`at most ${MAX_READ_BYTES}.`);
  return size;
}

function openOutput(path: string): Promise<WriteStream> {
  return new Promise((resolve, reject) => {
    const stream = createWriteStream(path);
    stream.once("open", () => resolve(stream));
    stream.once("error", (error) => reject(fileError(path, error)));
  });
}

/** Writes with backpressure: waits for 'drain' when the stream's buffer is full. */
function write(sink: Writable, bytes: Uint8Array, path?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(fileError(path ?? "stdout", error));
    sink.once("error", onError);
    const done = () => {
      sink.off("error", onError);
      resolve();
    };
    if (sink.write(bytes)) done();
    else sink.once("drain", done);
  });
}

function close(stream: WriteStream, path: string): Promise<void> {
  return new Promise((resolve, reject) =>
    stream.end((error?: Error | null) => (error ? reject(fileError(path, error)) : resolve())),
  );
}

function fileError(path: string, error: Error): CliError {
  return new CliError(EXIT.FILE_ERROR, `cannot write ${path}: ${error.message}`);
}
