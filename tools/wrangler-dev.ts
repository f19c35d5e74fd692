/**
 * `wrangler dev` as a child process on loopback, for the Node end-to-end tests (restart, kill)
 * and the memory benchmark: start it on persisted state, wait until it serves, stop it
 * (SIGTERM) or kill it (SIGKILL, no shutdown at all). One place, so tests and bench agree; the
 * process handling itself is server-process.ts.
 */
import { createServer } from "node:net";
import { startServerProcess, type ServerProcess } from "./server-process";

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

export interface DevServer extends ServerProcess {
  port: number;
  inspectorPort: number;
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
  const { persistTo, vars = {}, env = {}, onLine, timeoutMs } = options;
  const port = options.port ?? (await freePort());
  const inspectorPort = await freePort();
  const args = ["wrangler", "dev", "--port", String(port), "--ip", "127.0.0.1"];
  args.push("--persist-to", persistTo, "--inspector-port", String(inspectorPort));
  args.push("--inspector-ip", "127.0.0.1", "--show-interactive-dev-session=false");
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  const server = await startServerProcess({
    command: "npx",
    args,
    url: `http://127.0.0.1:${port}`,
    env: { ...process.env, ...QUIET_ENV, CI: "1", ...env },
    onLine,
    timeoutMs,
  });
  return { ...server, port, inspectorPort };
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
