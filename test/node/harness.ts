/**
 * End-to-end helpers: the real Worker and Durable Object on loopback, driven from Node.
 *
 * - `startHarness` runs the Worker in-process with wrangler's `createTestHarness()`, which can
 *   evict a Durable Object (with its sockets hibernated or closed) as the platform does.
 * - `startWranglerDev` runs `wrangler dev` as a child process on a persisted state directory, so
 *   a test can stop the whole server and start it again on the same state.
 * - `recordingWebSocket` is a WebSocket for `KernelConnection`'s `WebSocket` option that logs
 *   every frame both ways and keeps every socket, so a test can check the wire and drop a socket.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { createTestHarness, type TestHarness } from "wrangler";
import { decodeFrame } from "../../schema";

const QUIET_ENV = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };
Object.assign(process.env, QUIET_ENV);

/** Short timings so idle flushes and lock timeouts happen within a test. */
export const FAST_VARS: Record<string, string> = {
  FLUSH_DELAY_MS: "300",
  FLUSH_RETRY_MS: "20",
  LOCK_TIMEOUT_MS: "2000",
};

export interface Harness {
  url: string;
  server: TestHarness;
  /** Evicts the object's Durable Object; its storage stays, its memory is lost. */
  evict(object: string, webSockets: "hibernate" | "close"): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the real Worker in-process (wrangler's test harness) and returns its loopback URL.
 * Authentication stays off even when a local `.dev.vars` sets `AUTH_SECRET`.
 */
export async function startHarness(vars: Record<string, string> = FAST_VARS): Promise<Harness> {
  const server = createTestHarness({
    workers: [{ configPath: "./wrangler.toml", vars, secrets: { AUTH_SECRET: "" } }],
  });
  const { url } = await server.listen();
  return {
    url: url.toString(),
    server,
    evict: (object, webSockets) =>
      server.getWorker().evictDurableObject("MemoryObject", { name: object, webSockets }),
    close: () => server.close(),
  };
}

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
  /** The child's output so far, for failure messages. */
  output(): string;
  /** SIGTERM to the child's process group; resolves when the child has exited. */
  stop(): Promise<void>;
  /** SIGKILL to the child's process group at once (no shutdown at all); resolves on exit. */
  kill(): Promise<void>;
}

/**
 * Starts `wrangler dev` on `127.0.0.1:port` with state under `persistTo`, and resolves once it
 * answers `GET /`. The child leads its own process group, so `stop` ends workerd with it.
 */
export async function startWranglerDev(options: {
  port: number;
  persistTo: string;
  vars?: Record<string, string>;
  timeoutMs?: number;
}): Promise<DevServer> {
  const { port, persistTo, vars = FAST_VARS, timeoutMs = 60_000 } = options;
  const inspectorPort = await freePort();
  const args = ["wrangler", "dev", "--port", String(port), "--ip", "127.0.0.1"];
  args.push("--persist-to", persistTo, "--inspector-port", String(inspectorPort));
  args.push("--inspector-ip", "127.0.0.1", "--show-interactive-dev-session=false");
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  const child = spawn("npx", args, {
    env: { ...process.env, ...QUIET_ENV, CI: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const server: DevServer = {
    url: `http://127.0.0.1:${port}`,
    port,
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

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  signalGroup(child, "SIGTERM");
  const killed = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000)),
  ]);
  if (!killed) {
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

/** One frame as seen on the wire: its JSON header, and for binary frames the payload. */
export interface WireFrame {
  header: Record<string, any> & { type: string };
  payload: Uint8Array | null;
  /** Which of the connection's sockets carried it (an index into `WireLog.sockets`). */
  socket: number;
}

export interface WireLog {
  sent: WireFrame[];
  received: WireFrame[];
  /** Every socket the connection opened, oldest first. */
  sockets: WebSocket[];
  /** Called with each frame received, before the connection handles it. */
  onReceive?: (frame: WireFrame) => void;
}

/**
 * A WebSocket class for `KernelOptions.WebSocket` that logs every frame sent and received into
 * `log` and keeps each socket, so a test can close the current one to drop the connection.
 */
export function recordingWebSocket(log: WireLog): typeof WebSocket {
  return class RecordingWebSocket extends WebSocket {
    private readonly index: number;

    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      this.index = log.sockets.push(this) - 1;
      // Registered before the connection's own listener, so this runs first.
      this.addEventListener("message", (event) => {
        const frame = readFrame(event.data as string | ArrayBuffer, this.index);
        log.received.push(frame);
        log.onReceive?.(frame);
      });
    }

    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      super.send(data); // logged only once it did not throw
      log.sent.push(readFrame(data as string | Uint8Array, this.index));
    }
  };
}

export function newWireLog(): WireLog {
  return { sent: [], received: [], sockets: [] };
}

function readFrame(data: string | ArrayBuffer | Uint8Array, socket: number): WireFrame {
  const frame = decodeFrame(data);
  return { header: frame.header as WireFrame["header"], payload: frame.payload, socket };
}

/** Rejects if `promise` has not settled within `timeoutMs`, naming `what`. */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A small seeded PRNG (mulberry32), so each run makes the same choices. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
