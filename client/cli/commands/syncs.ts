/** `edgepager syncs OBJECT`: the outstanding synchronize requests (GET …/syncs, docs/protocol.md §9). */
import type { Command } from "commander";
import { HttpClient, type OutstandingSync } from "../../http";
import { globalsOf, parseObjectName, syncFlagNames } from "../options";
import { formatTable, printResult } from "../output";

export function registerSyncs(program: Command): void {
  program
    .command("syncs")
    .summary("list an object's outstanding synchronize requests")
    .description(
      "List the synchronize requests the manager has accepted and not yet completed, oldest " +
        "first: the kernel that asked, its message id and seqno, the range and the flags.",
    )
    .argument("<object>", "object name", parseObjectName)
    .action(async (object: string, _options: unknown, command: Command) => {
      const globals = globalsOf(command);
      const syncs = await new HttpClient(globals.url, globals.token).syncs(object);
      printResult(globals.json, () => describeSyncs(syncs), { syncs });
    });
}

function describeSyncs(syncs: OutstandingSync[]): string {
  if (syncs.length === 0) return "no outstanding synchronize requests";
  return formatTable([
    ["KERNEL", "ID", "SEQNO", "OFFSET", "LENGTH", "FLAGS", "SINCE"],
    ...syncs.map((s) => [
      s.kernel,
      String(s.id),
      String(s.seqno),
      String(s.offset),
      String(s.length),
      syncFlagNames(s.sync_flags),
      s.since,
    ]),
  ]);
}
