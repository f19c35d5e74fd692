/**
 * Runs the built `edgepager` CLI (dist/cli.js) as a child process, the way a user or a script
 * does, and builds it first when it is missing or older than its sources, so the CLI test never
 * runs a stale bundle. The build mirrors the CLI step of `npm run build`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = join(ROOT, "dist", "cli.js");

/** Bundles client/cli.ts to dist/cli.js unless the bundle is newer than every source. */
export async function buildCliIfStale(): Promise<void> {
  const built = mtimeOf(CLI);
  const sources = Math.max(newestIn(join(ROOT, "client")), newestIn(join(ROOT, "schema")));
  if (built > sources) return;
  await build({
    entryPoints: [join(ROOT, "client", "cli.ts")],
    bundle: true,
    format: "esm",
    platform: "node",
    packages: "external",
    outfile: CLI,
    logLevel: "warning",
  });
}

export interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** The environment for a run: the caller's, without any EDGEPAGER_* that would leak in. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const name of ["EDGEPAGER_URL", "EDGEPAGER_TOKEN"]) if (!(name in extra)) delete env[name];
  return env;
}

/** Runs the CLI to its end and returns its exit code and output. */
export function runCli(args: string[], env = cliEnv()): Promise<CliResult> {
  const child = spawnCli(args, env);
  const stdout: Buffer[] = [];
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr }));
  });
}

/** A long-running CLI (`watch`): its stdout lines as they come, and its exit. */
export interface RunningCli {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first line (present or future) that `match` accepts. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  exited: Promise<CliResult>;
}

export function startCli(args: string[], env = cliEnv()): RunningCli {
  const child = spawnCli(args, env);
  const lines: string[] = [];
  const waiters: { match: (line: string) => boolean; resolve(line: string): void }[] = [];
  let partial = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split("\n");
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (!waiter.match(line)) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<CliResult>((resolve) =>
    child.once("close", (code) =>
      resolve({ code, stdout: Buffer.from(lines.join("\n") + partial), stderr }),
    ),
  );
  return {
    child,
    lines,
    exited,
    waitForLine(match, timeoutMs = 10_000) {
      const found = lines.find(match);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no matching line in ${timeoutMs} ms; got:\n${lines.join("\n")}\n${stderr}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      });
    },
  };
}

function spawnCli(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: "pipe" });
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function newestIn(directory: string): number {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, mtimeOf(join(entry.parentPath, entry.name)));
  }
  return newest;
}
