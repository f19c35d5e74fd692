/** `edgepager stat OBJECT`: the object's status (GET /v1/objects/{name}, docs/protocol.md §9). */
import type { Command } from "commander";
import { HttpClient, type ObjectStatus } from "../../http";
import { globalsOf, parseObjectName } from "../options";
import { formatBytes, printResult } from "../output";

export function registerStat(program: Command): void {
  program
    .command("stat")
    .summary("show an object's page size, pages, journal, kernels and outstanding syncs")
    .description(
      "Show an object's status: page size, pages written and their bytes, pages still in the " +
        "journal (not yet in R2), the next seqno, the kernels it knows and outstanding syncs.",
    )
    .argument("<object>", "object name", parseObjectName)
    .action(async (object: string, _options: unknown, command: Command) => {
      const globals = globalsOf(command);
      const status = await new HttpClient(globals.url, globals.token).stat(object);
      printResult(globals.json, () => describeStatus(status), status);
    });
}

function describeStatus(status: ObjectStatus): string {
  const kernels = status.kernels.map(
    (k) =>
      `${k.kernel} (${k.connected ? "connected" : "disconnected"}, last id ${k.last_id}` +
      // It must drop what it caches at its next init (docs/protocol.md §6.6).
      `${k.stale ? ", stale" : ""})`,
  );
  const lines: [string, string][] = [
    ["object", status.object],
    ["page size", status.page_size === null ? "not fixed yet" : String(status.page_size)],
    ["pages", `${status.pages} (${formatBytes(status.bytes)})`],
    ["journal", `${status.journal_pages} pages not yet in R2`],
    ["next seqno", String(status.seqno)],
    ["max size", formatBytes(status.max_size)],
    ["syncs", `${status.syncs} outstanding`],
    ["kernels", kernels.length > 0 ? kernels.join("\n            ") : "none"],
  ];
  return lines.map(([label, value]) => `${label.padEnd(10)}  ${value}`).join("\n");
}
