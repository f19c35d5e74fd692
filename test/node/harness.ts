/**
 * End-to-end helpers: the real Worker and Durable Object on loopback, driven from Node.
 *
 * - `startHarness` runs the Worker in-process with wrangler's `createTestHarness()`, which can
 *   evict a Durable Object (with its sockets hibernated or closed) as the platform does.
 * - `startWranglerDev` runs `wrangler dev` as a child process on a persisted state directory, so
 *   a test can stop the whole server and start it again on the same state.
 * - `recordingWebSocket` is a WebSocket for `KernelConnection`'s `WebSocket` option that logs
 *   every message both ways (a batch frame's one by one) and every frame, and keeps every socket,
 *   so a test can check the wire, count frames and drop a socket.
 */
import { createTestHarness, type TestHarness } from "wrangler";
import { decodeFrameOrBatch, isBatch } from "../../schema";
import { QUIET_ENV } from "../../tools/wrangler-dev";

Object.assign(process.env, QUIET_ENV);
// `wrangler dev` as a child process lives in tools/, shared with the benchmarks.
export { freePort, startWranglerDev, within, type DevServer } from "../../tools/wrangler-dev";
export { seededRandom } from "../../tools/random";

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

/**
 * The real Worker as deployed: authentication required (`REQUIRE_AUTH`), tokens signed with
 * `secret`. Returns the server and its URL without a trailing slash.
 *
 * @example const { server, url } = await startAuthHarness("s3cret");
 */
export async function startAuthHarness(
  secret: string,
  vars: Record<string, string> = {},
): Promise<{ server: TestHarness; url: string }> {
  const server = createTestHarness({
    workers: [
      {
        configPath: "./wrangler.toml",
        vars: { REQUIRE_AUTH: "true", ...vars },
        secrets: { AUTH_SECRET: secret },
      },
    ],
  });
  const url = (await server.listen()).url.toString().replace(/\/$/, "");
  return { server, url };
}

/**
 * One message as seen on the wire: its JSON header, and the payload of one that carries pages.
 * A batch frame (docs/protocol.md §11) is logged as its messages, in order.
 */
interface WireFrame {
  header: Record<string, any> & { type: string };
  payload: Uint8Array | null;
  /** Which of the connection's sockets carried it (an index into `WireLog.sockets`). */
  socket: number;
  /** Which frame of its direction carried it (an index into `sentFrames` or `receivedFrames`). */
  frame: number;
}

/** One frame on the wire, however many messages it held. */
interface WireFrameInfo {
  socket: number;
  messages: number;
  binary: boolean;
  bytes: number;
}

export interface WireLog {
  sent: WireFrame[];
  received: WireFrame[];
  /** The frames themselves: fewer than the messages when batches are on. */
  sentFrames: WireFrameInfo[];
  receivedFrames: WireFrameInfo[];
  /** Every socket the connection opened, oldest first. */
  sockets: WebSocket[];
  /** Called with each message received, before the connection handles it. */
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
        const messages = readFrame(
          event.data as string | ArrayBuffer,
          this.index,
          log.receivedFrames,
        );
        log.received.push(...messages);
        for (const message of messages) log.onReceive?.(message);
      });
    }

    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      super.send(data); // logged only once it did not throw
      log.sent.push(...readFrame(data as string | Uint8Array, this.index, log.sentFrames));
    }
  };
}

export function newWireLog(): WireLog {
  return { sent: [], received: [], sentFrames: [], receivedFrames: [], sockets: [] };
}

function readFrame(
  data: string | ArrayBuffer | Uint8Array,
  socket: number,
  frames: WireFrameInfo[],
): WireFrame[] {
  const decoded = decodeFrameOrBatch(data);
  const messages = isBatch(decoded) ? decoded.messages : [decoded];
  const frame =
    frames.push({
      socket,
      messages: messages.length,
      binary: typeof data !== "string",
      bytes: typeof data === "string" ? data.length : data.byteLength,
    }) - 1;
  return messages.map((message) => {
    if (message instanceof Error) throw message;
    return {
      header: message.header as WireFrame["header"],
      payload: message.payload,
      socket,
      frame,
    };
  });
}
