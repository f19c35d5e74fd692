/**
 * A local server as a child process: spawn a command as the leader of its own process group,
 * keep the tail of what it prints, resolve once its URL answers `GET /`, and stop it (SIGTERM)
 * or kill it (SIGKILL). Stopping the group ends every process under the command together (npm,
 * the shell, npx, wrangler, workerd), so no server outlives a test.
 */
import { spawn, type ChildProcess } from "node:child_process";

export interface ServerProcess {
  /** Where it serves, without a trailing slash. */
  url: string;
  /** The child, leader of the process group. */
  child: ChildProcess;
  /** The last 64 KiB the child printed, for failure messages. */
  output(): string;
  /** SIGTERM to the process group, SIGKILL after 10 s; resolves when the child has exited. */
  stop(): Promise<void>;
  /** SIGKILL to the process group at once; resolves when the child has exited. */
  kill(): Promise<void>;
}

/**
 * Runs `command args` and resolves once `url` answers `GET /` with a 2xx. Rejects, with what the
 * child printed, if it exits first or does not answer within `timeoutMs` (then it is stopped).
 */
export async function startServerProcess(options: {
  command: string;
  args: string[];
  url: string;
  /** The child's whole environment. */
  env: NodeJS.ProcessEnv;
  /** Called with each line the child prints. */
  onLine?: (line: string) => void;
  timeoutMs?: number;
}): Promise<ServerProcess> {
  const { command, args, url, env, onLine, timeoutMs = 60_000 } = options;
  const what = [command, ...args].join(" ");
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  let partial = "";
  const take = (chunk: Buffer) => {
    const text = chunk.toString();
    output = (output + text).slice(-65536);
    if (!onLine) return;
    const lines = (partial + text).split("\n");
    partial = lines.pop()!;
    for (const line of lines) onLine(line);
  };
  child.stdout!.on("data", take);
  child.stderr!.on("data", take);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const server: ServerProcess = {
    url,
    child,
    output: () => output,
    stop: () => stopChild(child, exited),
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signalGroup(child, "SIGKILL");
      await exited;
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`${what} exited (${child.exitCode}) before answering:\n${output}`);
    }
    try {
      const response = await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return server;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${what} did not answer GET / within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  signalGroup(child, "SIGTERM");
  const stopped = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000)),
  ]);
  if (!stopped) {
    signalGroup(child, "SIGKILL");
    await exited;
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal); // the group this child leads
  } catch {
    // Already gone.
  }
}
