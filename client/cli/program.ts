/**
 * The `edgepager` command line: global options, the commands, and the one place where a
 * failure becomes a message and an exit code (`exit-codes.ts`). Each command lives in
 * `commands/`, one file per command, and registers itself on the program.
 */
import { Command, CommanderError, Option } from "commander";
import { registerGet } from "./commands/get";
import { registerLs } from "./commands/ls";
import { registerPut } from "./commands/put";
import { registerRm } from "./commands/rm";
import { registerSmoke } from "./commands/smoke";
import { registerSql } from "./commands/sql";
import { registerStat } from "./commands/stat";
import { registerSync } from "./commands/sync";
import { registerSyncs } from "./commands/syncs";
import { registerToken } from "./commands/token";
import { registerWatch } from "./commands/watch";
import { EXIT, EXIT_CODES_HELP, type ExitCode } from "./exit-codes";
import { describeFailure } from "./failure";
import { DEFAULT_URL, parseUrl, type GlobalOptions } from "./options";

/** Every command, in the order `--help` lists them (and docs/cli.md). */
export const COMMANDS = [
  "put",
  "get",
  "sync",
  "stat",
  "ls",
  "syncs",
  "watch",
  "rm",
  "sql",
  "token",
  "smoke",
] as const;

function buildProgram(): Command {
  const program = new Command("edgepager")
    .description("Command line for edgepager, a Mach-style external memory manager on Workers.")
    .addOption(
      new Option("--url <url>", "the service's base URL")
        .env("EDGEPAGER_URL")
        .default(DEFAULT_URL)
        .argParser(parseUrl),
    )
    .addOption(
      new Option("--token <token>", "bearer token, if the service requires one").env(
        "EDGEPAGER_TOKEN",
      ),
    )
    .option("--json", "machine-readable output: one JSON value per result or event")
    .addHelpText("after", `\n${EXIT_CODES_HELP}`)
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError("(add --help for usage)")
    .exitOverride();
  for (const register of [
    registerPut,
    registerGet,
    registerSync,
    registerStat,
    registerLs,
    registerSyncs,
    registerWatch,
    registerRm,
    registerSql,
    registerToken,
    registerSmoke,
  ]) {
    register(program);
  }
  return program;
}

/**
 * Runs the command line and returns the exit code; never throws.
 *
 * @example process.exitCode = await run(["node", "edgepager", "stat", "demo"]);
 */
export async function run(argv: string[]): Promise<ExitCode> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.OK;
  } catch (error) {
    // Commander has printed its own message (or the help) already.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    const globals = program.opts<GlobalOptions>();
    const failure = describeFailure(error, globals.url ?? DEFAULT_URL);
    process.stderr.write(
      globals.json
        ? `${JSON.stringify({ error: { exit_code: failure.exitCode, message: failure.message, ...kernFields(failure.kernReturn) } })}\n`
        : `edgepager: ${failure.message}\n`,
    );
    return failure.exitCode;
  }
}

function kernFields(kern?: { value: number; name: string; code: string }) {
  return kern ? { kern_return: kern.value, kern_return_name: kern.name, code: kern.code } : {};
}
