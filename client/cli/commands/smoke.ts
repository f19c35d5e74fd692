/**
 * `edgepager smoke`: checks a running service end to end (smoke.ts has the steps) and prints a
 * line per step as it ends, so a deploy that half works shows where. Exit 0 only when every
 * step passed; otherwise the first failure's exit code (2 unreachable, 3 refused, 1 a wrong
 * answer) and its message on stderr, like every other command.
 */
import { InvalidArgumentError, type Command } from "commander";
import { DEFAULT_PAGE_SIZE } from "../../../schema";
import { CliError } from "../failure";
import { globalsOf, parsePositiveCount } from "../options";
import { printResult } from "../output";
import { runSmoke, smokeObjectName, type SmokeReport, type StepResult } from "../smoke";

/** Enough pages to span a few, few enough to stay a quick check (4 MiB at most). */
const MAX_PAGES = 1024;

interface SmokeCommandOptions {
  pages: number;
  prefix: string;
  timeout: number;
}

export function registerSmoke(program: Command): void {
  program
    .command("smoke")
    .summary("check a running service end to end (after a deploy)")
    .description(
      "Check a running service end to end, one step at a time: GET / answers; PUT random " +
        "pages to a fresh object named <prefix><time>-<random>; synchronize them SYNCHRONOUS " +
        "(sync_flags 2, in R2 on completion); read them back and compare the bytes; stat " +
        "counts them; DELETE the object (also after a failed step, once a write was tried). " +
        "Prints each step with ok, FAILED or skipped and its time; exit 0 only if all passed. " +
        "The token, if the service requires one, needs read, write and admin on the object.",
    )
    .option("--pages <count>", `pages to write, 1 to ${MAX_PAGES}`, parsePages, 4)
    .option("--prefix <prefix>", "start of the object's name", parsePrefix, "smoke-")
    .option("--timeout <ms>", "how long one step may take", parsePositiveCount, 30_000)
    .action(async (options: SmokeCommandOptions, command: Command) => {
      const globals = globalsOf(command);
      const object = smokeObjectName(options.prefix);
      if (!globals.json) process.stdout.write(`smoke test of ${globals.url}, object ${object}\n`);
      const report = await runSmoke({
        url: globals.url,
        token: globals.token,
        object,
        pages: options.pages,
        pageSize: DEFAULT_PAGE_SIZE,
        timeoutMs: options.timeout,
        onStep: globals.json ? undefined : (step) => process.stdout.write(`${stepLine(step)}\n`),
      });
      printResult(globals.json, () => summary(report), reportJson(report));
      if (report.failure) {
        const { step, failure } = report.failure;
        throw new CliError(failure.exitCode, `smoke test failed at ${step}: ${failure.message}`);
      }
    });
}

/** `  ok       put          25 ms  PUT 4 pages …: accepted, seqno 0` */
function stepLine(step: StepResult): string {
  const status = step.status === "failed" ? "FAILED" : step.status;
  const time = step.status === "skipped" ? "" : `${step.ms} ms`;
  return `  ${status.padEnd(8)} ${step.step.padEnd(11)} ${time.padStart(8)}  ${step.detail}`;
}

function summary(report: SmokeReport): string {
  const seconds = (report.ms / 1000).toFixed(2);
  const passed = report.steps.filter((step) => step.status === "ok").length;
  return report.failure
    ? `failed at ${report.failure.step}: ${passed} of ${report.steps.length} steps ok, ${seconds} s`
    : `passed: ${passed} of ${report.steps.length} steps ok, ${seconds} s`;
}

/** The report for --json, snake_case like every JSON output; the failure itself goes to stderr. */
function reportJson(report: SmokeReport) {
  const steps = report.steps.map(({ step, status, ms, detail }) => ({ step, status, ms, detail }));
  const { url, object, passed, ms } = report;
  return { url, object, passed, ms, steps };
}

function parsePages(value: string): number {
  const pages = parsePositiveCount(value);
  if (pages > MAX_PAGES) throw new InvalidArgumentError(`at most ${MAX_PAGES}.`);
  return pages;
}

/** Room is left for the `<time>-<random>` the name gets (object names are at most 128). */
function parsePrefix(value: string): string {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(value)) {
    throw new InvalidArgumentError("1-100 characters of A-Z a-z 0-9 . _ -");
  }
  return value;
}
