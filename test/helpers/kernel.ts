/**
 * A tiny test kernel: a real WebSocket to the real Worker and Durable Object, with helpers to
 * send messages and wait for the manager's answers. Not a client library (that is `client/`):
 * tests use it to build exact situations, including malformed frames.
 */
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import {
  GRANT_HEADER,
  OBJECT_NAME_HEADER,
  decodeFrameOrBatch,
  encodeFrame,
  isBatch,
} from "../../schema";
import { objectStub } from "./buckets";

export type Received = Record<string, any> & { type: string; payload?: Uint8Array };

export interface InitOptions {
  pageSize?: number;
  receivedMid?: number;
  id?: number;
  /** Ask for batches (docs/protocol.md §11); left out of the init when unset. */
  batch?: boolean;
  /** The atomic groups to keep (docs/protocol.md §12); left out of the init when unset. */
  openGroups?: number[];
  /** The mode to ask for (docs/protocol.md §10); left out of the init when unset. */
  coherent?: boolean;
}

export class TestKernel {
  /** Every message received, those of a batch frame one by one (docs/protocol.md §11). */
  readonly received: Received[] = [];
  /** Every frame received: how many messages it held, and whether it was a batch. */
  readonly frames: { batch: boolean; messages: number }[] = [];
  private waiters: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];
  private watchers: ((m: Received) => void)[] = [];
  closed: { code: number; reason: string } | null = null;
  private nextId = 1;
  private nextProbeId = Number.MAX_SAFE_INTEGER;

  private constructor(
    readonly socket: WebSocket,
    readonly object: string,
    readonly kernel: string,
  ) {
    // Binary messages arrive as Blobs on this side; a chain keeps them in arrival order.
    let chain = Promise.resolve();
    socket.addEventListener("message", (event) => {
      const data = event.data as string | ArrayBuffer | Blob;
      chain = chain.then(async () =>
        this.take(
          typeof data === "string" || data instanceof ArrayBuffer ? data : await data.arrayBuffer(),
        ),
      );
    });
    socket.addEventListener("close", (event) => {
      this.closed = { code: event.code, reason: event.reason };
    });
  }

  private take(data: string | ArrayBuffer): void {
    const decoded = decodeFrameOrBatch(data);
    const frames = isBatch(decoded) ? decoded.messages : [decoded];
    this.frames.push({ batch: isBatch(decoded), messages: frames.length });
    for (const frame of frames) {
      if (frame instanceof Error) throw frame; // the manager sends only objects
      this.receive({ ...frame.header, payload: frame.payload ?? undefined } as Received);
    }
  }

  private receive(message: Received): void {
    this.received.push(message);
    for (const watcher of this.watchers) watcher(message);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(message)) return true;
      w.resolve(message);
      return false;
    });
  }

  /**
   * Calls `listener` with every message from now on, as it arrives and before any waiter sees it:
   * for a kernel that must act at the moment a message comes (the torture test's resume logic).
   */
  watch(listener: (m: Received) => void): void {
    this.watchers.push(listener);
  }

  /** Opens the control socket of `kernel` on `object` (not yet initialised). */
  static async connect(object: string, kernel: string): Promise<TestKernel> {
    const response = await exports.default.fetch(
      `http://edgepager.test/v1/objects/${object}/control?kernel=${kernel}`,
      { headers: { Upgrade: "websocket" } },
    );
    const socket = response.webSocket;
    if (!socket) throw new Error(`upgrade refused: ${response.status} ${await response.text()}`);
    socket.accept();
    return new TestKernel(socket, object, kernel);
  }

  /**
   * Connects straight to the object with the grant the Worker would have verified (rights, and
   * expiry in seconds), as a caller holding such a token.
   */
  static async connectWithGrant(
    object: string,
    kernel: string,
    grant: { rights: string[]; exp: number; caller?: string },
  ): Promise<TestKernel> {
    const response = await objectStub(object).fetch(
      `http://edgepager.test/v1/objects/${object}/control?kernel=${kernel}`,
      {
        headers: {
          Upgrade: "websocket",
          [OBJECT_NAME_HEADER]: object,
          [GRANT_HEADER]: JSON.stringify(grant),
        },
      },
    );
    const socket = response.webSocket;
    if (!socket) throw new Error(`upgrade refused: ${response.status} ${await response.text()}`);
    socket.accept();
    return new TestKernel(socket, object, kernel);
  }

  /** Connects and does the init/ready handshake (`batch`: ask for batches, docs/protocol.md §11). */
  static async open(
    object: string,
    kernel: string,
    options: InitOptions = {},
  ): Promise<{ kernel: TestKernel; ready: Received }> {
    const k = await TestKernel.connect(object, kernel);
    const ready = await k.init(options);
    return { kernel: k, ready };
  }

  async init(options: InitOptions = {}): Promise<Received> {
    const id = options.id ?? this.takeId();
    this.send({
      type: "memory_object_init",
      id,
      page_size: options.pageSize ?? 4096,
      received_mid: options.receivedMid ?? 0,
      ...(options.batch !== undefined && { batch: options.batch }),
      ...(options.openGroups !== undefined && { open_groups: options.openGroups }),
      ...(options.coherent !== undefined && { coherent: options.coherent }),
    });
    return this.next(
      (m) => m.type === "memory_object_ready" || (m.type === "error" && m.reply_to === id),
    );
  }

  takeId(): number {
    return this.nextId++;
  }

  /** Lets a resumed kernel continue its id sequence. */
  setNextId(id: number): void {
    this.nextId = id;
  }

  send(message: object | string): void {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  sendBinary(header: object, payload: Uint8Array): void {
    this.socket.send(encodeFrame(header, payload));
  }

  /**
   * Sends messages as one batch frame (docs/protocol.md §11): a JSON array, or with `payloads`
   * a binary frame whose header is the array and whose payloads follow back to back (as given:
   * a test may send them not matching the lengths).
   */
  sendBatch(messages: unknown[], payloads?: Uint8Array[]): void {
    if (!payloads) {
      this.socket.send(JSON.stringify(messages));
      return;
    }
    const bytes = new Uint8Array(payloads.reduce((sum, p) => sum + p.byteLength, 0));
    let offset = 0;
    for (const payload of payloads) {
      bytes.set(payload, offset);
      offset += payload.byteLength;
    }
    this.socket.send(encodeFrame(messages, bytes));
  }

  /** A dirty data_return of `data` at `offset`, for a batch (its payload goes beside it). */
  returnOf(offset: number, data: Uint8Array, id = this.takeId()): Record<string, unknown> {
    return {
      type: "memory_object_data_return",
      id,
      offset,
      length: data.byteLength,
      dirty: true,
      kernel_copy: false,
    };
  }

  /** A synchronize, for a batch. */
  synchronizeOf(offset: number, length: number, syncFlags: number, id = this.takeId()) {
    return { type: "memory_object_synchronize", id, offset, length, sync_flags: syncFlags };
  }

  /** Sends a dirty data_return and returns its id. */
  dataReturn(offset: number, data: Uint8Array, id = this.takeId()): number {
    this.sendBinary(this.returnOf(offset, data, id), data);
    return id;
  }

  /** Answers a lock request: did what it asked, over its range. Returns the answer's id. */
  lockCompleted(lock: Received, id = this.takeId()): number {
    this.send({
      type: "memory_object_lock_completed",
      id,
      lock_id: lock.lock_id,
      offset: lock.offset,
      length: lock.length,
    });
    return id;
  }

  synchronize(offset: number, length: number, syncFlags: number, id = this.takeId()): number {
    this.send(this.synchronizeOf(offset, length, syncFlags, id));
    return id;
  }

  dataRequest(offset: number, length: number, id = this.takeId()): number {
    this.send({ type: "memory_object_data_request", id, offset, length, desired_access: 1 });
    return id;
  }

  /** Waits for the first message (already received or to come) that matches. */
  next(match: (m: Received) => boolean, timeoutMs = 10_000): Promise<Received> {
    const seen = this.received.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.summary())}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /**
   * Sends a probe and resolves with its answer. The manager answers each kernel in seqno order
   * (docs/protocol.md §3), so once the probe's answer is here, everything the messages before it
   * were to send this kernel has arrived: what has not arrived by then is not coming from them.
   * The default probe is a data_request of the object's last page, which no test writes and no
   * test's INVALIDATE covers, so it changes nothing a test looks at but the seqno. Its id counts
   * down from the largest safe integer, so it never meets an id of the test's own (a
   * data_request's id only names its answer). `send` sends a probe of the caller's own and
   * returns its id (a kernel that keeps its own ids).
   */
  probe(send: () => number = () => this.requestLastPage()): Promise<Received> {
    const seen = this.received.length;
    const id = send();
    return this.next((m) => m.reply_to === id && this.received.indexOf(m) >= seen);
  }

  private requestLastPage(): number {
    const ready = this.received.findLast((m) => m.type === "memory_object_ready");
    const pageSize: number = ready?.page_size ?? 4096;
    const maxSize: number = ready?.max_size ?? 2 ** 40;
    const lastPage = Math.floor(maxSize / pageSize) * pageSize - pageSize;
    return this.dataRequest(lastPage, pageSize, this.nextProbeId--);
  }

  /** The answer to message `id`: its ack, error, or read reply. */
  answer(id: number): Promise<Received> {
    return this.next((m) => (m.type === "ack" && m.id === id) || m.reply_to === id);
  }

  ack(id: number): Promise<Received> {
    return this.next((m) => m.type === "ack" && m.id === id);
  }

  completion(id: number, timeoutMs?: number): Promise<Received> {
    return this.next(
      (m) =>
        (m.type === "memory_object_synchronize_completed" || m.type === "error") &&
        m.reply_to === id,
      timeoutMs,
    );
  }

  /** Every completion received for synchronize `id` (a test of exactly-once counts them). */
  completions(id: number): Received[] {
    return this.all("memory_object_synchronize_completed").filter((m) => m.reply_to === id);
  }

  all(type: string): Received[] {
    return this.received.filter((m) => m.type === type);
  }

  /** What arrived, without binary payloads (for a readable failure message). */
  summary(): object[] {
    return this.received.map(({ payload: _payload, ...rest }) => rest);
  }

  close(): void {
    try {
      this.socket.close(1000, "test done");
    } catch {
      // already closed
    }
  }
}

/**
 * Asserts that nothing reached `kernel` since `received[since]` (by default: since now) but the
 * answer to a probe, which proves that nothing more is coming for the messages the object took
 * before it (`TestKernel.probe`). This is how a test shows that something did *not* happen in
 * answer to a message. It cannot show the absence of what a timer or a slow R2 call would send
 * later: for those, wait for an event that comes after it (CONTRIBUTING.md §14).
 */
export async function expectQuiet(kernel: TestKernel, since = kernel.received.length) {
  const answer = await kernel.probe();
  const strip = ({ payload: _payload, ...rest }: Received) => rest;
  expect(kernel.received.slice(since).map(strip), "nothing but the probe's answer").toEqual([
    strip(answer),
  ]);
}

/**
 * Resolves after `ms`. Only for what no message can stand for (a deadline, a client's own retry
 * timer), with a comment saying why; to show that a message had no answer, use `expectQuiet`.
 */
export function settle(ms = 50): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function pageOf(byte: number, size = 4096): Uint8Array {
  return new Uint8Array(size).fill(byte);
}
