/** `edgepager rm OBJECT`: destroys the object and its pages (DELETE, docs/protocol.md §9). */
import type { Command } from "commander";
import { HttpClient } from "../../http";
import { globalsOf, parseObjectName } from "../options";
import { printResult } from "../output";

export function registerRm(program: Command): void {
  program
    .command("rm")
    .summary("delete an object and its pages")
    .description(
      "Delete an object and its pages. Connected kernels get memory_object_destroy; the name " +
        "then starts afresh, empty. There is no undo.",
    )
    .argument("<object>", "object name", parseObjectName)
    .action(async (object: string, _options: unknown, command: Command) => {
      const globals = globalsOf(command);
      const result = await new HttpClient(globals.url, globals.token).remove(object);
      printResult(globals.json, () => `deleted ${result.object}`, result);
    });
}
