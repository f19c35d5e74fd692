/** `edgepager ls [PREFIX]`: the objects whose names start with PREFIX (GET /v1/objects, docs/protocol.md §9). */
import type { Command } from "commander";
import { HttpClient, type ObjectList } from "../../http";
import { globalsOf } from "../options";
import { formatBytes, formatTable, printResult } from "../output";

export function registerLs(program: Command): void {
  program
    .command("ls")
    .summary("list objects, by name")
    .description(
      "List the objects whose names start with PREFIX (every object without one) that the token " +
        "covers, by name: page size, mode, pages and their bytes, when each was created and its " +
        "last activity (both refreshed at most once a minute). Follows the listing's pages to the end.",
    )
    .argument("[prefix]", "names starting with this", "")
    .action(async (prefix: string, _options: unknown, command: Command) => {
      const globals = globalsOf(command);
      const http = new HttpClient(globals.url, globals.token);
      const objects: ObjectList["objects"] = [];
      let cursor: string | undefined;
      do {
        const page = await http.list(prefix, { cursor, limit: 1000 });
        objects.push(...page.objects);
        cursor = page.cursor ?? undefined;
      } while (cursor);
      printResult(globals.json, () => describeObjects(objects, prefix), { objects });
    });
}

function describeObjects(objects: ObjectList["objects"], prefix: string): string {
  if (objects.length === 0) return prefix ? `no object starts with "${prefix}"` : "no objects";
  return formatTable([
    ["OBJECT", "PAGE SIZE", "MODE", "PAGES", "BYTES", "CREATED", "LAST ACTIVITY"],
    ...objects.map((o) => [
      o.object,
      String(o.page_size),
      o.coherent ? "coherent" : "-",
      String(o.pages),
      formatBytes(o.bytes),
      o.created,
      o.last_activity,
    ]),
  ]);
}
