/**
 * `wrangler dev` as a child process on loopback, for the Node end-to-end tests (restart, kill)
 * and the memory benchmark: start it on persisted state, wait until it serves, stop it
 * (SIGTERM) or kill it (SIGKILL, no shutdown at all). The child leads its own process group, so
 * stopping it ends npx, wrangler and workerd together. One place, so tests and bench agree.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";

export const QUIET_ENV = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };

/** A free TCP port on loopback: listen on port 0, read the port, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export interface DevServer {
  url: string;
  port: number;
  inspectorPort: number;
  /** The child (npx), leader of the process group. */
  child: ChildProcess;
  /** The last 64 KiB the child printed, for failure messages. */
  output(): string;
  /** SIGTERM to the process group, SIGKILL after 10 s; resolves when the child has exited. */
  stop(): Promise<void>;
  /** SIGKILL to the process group at once; resolves when the child has exited. */
  kill(): Promise<void>;
}

/**
 * Starts `wrangler dev` on `127.0.0.1:port` (a free one if not given) with state under
 * `persistTo`, and resolves once it answers `GET /`.
 */
export async function startWranglerDev(options: {
  persistTo: string;
  port?: number;
  /** `--var NAME:value` overrides of wrangler.toml vars. */
  vars?: Record<string, string>;
  /** Extra environment for the child (e.g. MINIFLARE_WORKERD_V8_FLAGS). */
  env?: Record<string, string>;
  /** Called with each line the child prints. */
  onLine?: (line: string) => void;
  timeoutMs?: number;
}): Promise<DevServer> {
  const { persistTo, vars = {}, env = {}, onLine, timeoutMs = 60_000 } = options;
  const port = options.port ?? (await freePort());
  const inspectorPort = await freePort();
  const args = ["wrangler", "dev", "--port", String(port), "--ip", "127.0.0.1"];
  args.push("--persist-to", persistTo, "--inspector-port", String(inspectorPort));
  args.push("--inspector-ip", "127.0.0.1", "--show-interactive-dev-session=false");
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  const child = spawn("npx", args, {
    env: { ...process.env, ...QUIET_ENV, CI: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
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
  const server: DevServer = {
    url: `http://127.0.0.1:${port}`,
    port,
    inspectorPort,
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
      throw new Error(`wrangler dev exited (${child.exitCode}) before answering:\n${output}`);
    }
    try {
      const response = await fetch(`${server.url}/`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return server;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`wrangler dev did not answer GET / within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Rejects if `promise` has not settled within `timeoutMs`, naming `what`: a hang is a failure. */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${timeoutMs} ms: ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
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
    process.kill(-child.pid!, signal); // the group this child leads: npx, wrangler, workerd
  } catch {
    // Already gone.
  }
}
