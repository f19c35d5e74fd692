/**
 * `edgepager sync OBJECT`: memory_object_synchronize over HTTP (POST …/synchronize,
 * docs/protocol.md §9), as kernel `http`. HTTP rather than a control socket: the command has no pages of its own
 * to return first, a synchronize covers pages returned by every kernel alike (docs/protocol.md §6.4), and a
 * single request leaves no kernel behind for the manager to remember.
 */
import { Option, type Command } from "commander";
import { HttpClient } from "../../http";
import { VM_SYNC_SYNCHRONOUS } from "../../../schema";
import { globalsOf, parseCount, parseObjectName, parseSyncFlags, syncFlagNames } from "../options";
import { printResult } from "../output";

interface SyncOptions {
  offset: number;
  length: number;
  flags: number;
}

export function registerSync(program: Command): void {
  program
    .command("sync")
    .summary("synchronize a range (make it durable in R2) and wait for the completion")
    .description(
      "Synchronize a byte range of an object, as vm_msync did, and wait for " +
        "memory_object_synchronize_completed. SYNCHRONOUS waits until the range's pages are in " +
        "R2, ASYNCHRONOUS until they are durably accepted; INVALIDATE also has every kernel that " +
        "caches the range return and drop it first. Sent over HTTP, as kernel `http`.",
    )
    .argument("<object>", "object name", parseObjectName)
    .option("--offset <bytes>", "start of the range", parseCount, 0)
    .requiredOption("--length <bytes>", "length of the range (0 completes at once)", parseCount)
    .addOption(
      new Option("--flags <names>", "comma-separated: SYNCHRONOUS, ASYNCHRONOUS, INVALIDATE, ...")
        .argParser(parseSyncFlags)
        .default(VM_SYNC_SYNCHRONOUS, "SYNCHRONOUS"),
    )
    .action(async (object: string, options: SyncOptions, command: Command) => {
      const globals = globalsOf(command);
      const started = Date.now();
      const completion = await new HttpClient(globals.url, globals.token).synchronize(
        object,
        options.offset,
        options.length,
        options.flags,
      );
      const seconds = (Date.now() - started) / 1000;
      printResult(
        globals.json,
        () =>
          `synchronized ${object} offset ${completion.offset} length ${completion.length} ` +
          `(${syncFlagNames(options.flags)}): seqno ${completion.seqno}, ${seconds.toFixed(2)} s`,
        { object, ...completion, sync_flags: options.flags, seconds },
      );
    });
}
