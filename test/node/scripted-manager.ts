/**
 * A manager played by the test, for the client's side of docs/protocol.md §10 frame by frame: a
 * WebSocket class for `KernelOptions.WebSocket` whose sockets answer the init with a ready the
 * test shapes, log every message the kernel sends, and deliver whatever the test sends back (one
 * message per frame, or several as one batch frame, docs/protocol.md §11). The real manager
 * decides when to demote, flush or fence; here the test does, so each of the kernel's answers
 * can be checked on its own, in a fixed order.
 */
import {
  KernelConnection,
  PageCache,
  VM_PROT_NONE,
  type LockRequestMessage,
  type PageCacheOptions,
  type ReadyMessage,
} from "../../client";
import {
  MEMORY_OBJECT_RETURN_DIRTY,
  VM_PROT_NO_CHANGE,
  decodeFrameOrBatch,
  encodeBatch,
  encodeFrame,
  isBatch,
} from "../../schema";
import { waitFor } from "../helpers/wait";

export const PAGE = 4096;

/** A message the kernel sent, with its pages if it carried any. */
export type Sent = Record<string, any> & { type: string; payload: Uint8Array | null };

/** One manager message and its pages, for `deliver`. */
export interface Outgoing {
  message: object;
  payload?: Uint8Array;
}

class ScriptedSocket extends EventTarget {
  binaryType = "arraybuffer";
  closed = false;

  constructor(private readonly manager: ScriptedManager) {
    super();
    manager.sockets.push(this);
    setTimeout(() => this.dispatchEvent(new Event("open")));
  }

  send(data: string | Uint8Array): void {
    if (this.closed) throw new Error("socket closed");
    const decoded = decodeFrameOrBatch(data);
    for (const frame of isBatch(decoded) ? decoded.messages : [decoded]) {
      if (frame instanceof Error) throw frame;
      const message = { ...(frame.header as Sent), payload: frame.payload };
      this.manager.sent.push(message);
      if (message.type === "memory_object_init") this.manager.onInit(this);
    }
  }

  close(code = 1000, reason = ""): void {
    if (this.closed) return;
    this.closed = true;
    setTimeout(() => this.dispatchEvent(Object.assign(new Event("close"), { code, reason })));
  }

  /** One frame from the manager. */
  receive(frame: string | Uint8Array): void {
    if (this.closed) return;
    const data = typeof frame === "string" ? frame : frame.slice().buffer;
    this.dispatchEvent(new MessageEvent("message", { data }));
  }
}

export class ScriptedManager {
  readonly sockets: ScriptedSocket[] = [];
  readonly sent: Sent[] = [];
  /** What the next ready says (the test may change it before a reconnect). */
  ready: Partial<ReadyMessage> = {};
  private nextMid = 1;
  private nextLockId = 1;

  constructor(readonly coherent: boolean) {}

  /** The class to pass as `KernelOptions.WebSocket`. */
  get WebSocket(): typeof WebSocket {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const manager = this;
    return class extends ScriptedSocket {
      constructor() {
        super(manager);
      }
    } as unknown as typeof WebSocket;
  }

  /** A connection and its cache on this manager. */
  async connect(options: PageCacheOptions = {}): Promise<PageCache> {
    const connection = await KernelConnection.connect({
      url: "http://scripted.invalid",
      object: "o",
      kernel: "k",
      pageSize: PAGE,
      backoff: { initialMs: 1, maxMs: 5 },
      WebSocket: this.WebSocket,
    });
    return new PageCache(connection, options);
  }

  onInit(socket: ScriptedSocket): void {
    const ready: ReadyMessage = {
      type: "memory_object_ready",
      object: "o",
      kernel: "k",
      page_size: PAGE,
      max_transfer: 64 * PAGE,
      max_size: 2 ** 40,
      may_cache: true,
      copy_strategy: 0,
      last_id: 0,
      flush: false,
      batch: true,
      size: 0,
      coherent: this.coherent,
      seqno: 0,
      ...this.ready,
    };
    setTimeout(() => socket.receive(JSON.stringify(ready)));
  }

  /** Sends manager messages as one frame: a single one alone, several as a batch. */
  deliver(...messages: Outgoing[]): void {
    const socket = this.sockets.at(-1)!;
    if (messages.length === 1) {
      const [{ message, payload }] = messages as [Outgoing];
      socket.receive(payload ? encodeFrame(message, payload) : JSON.stringify(message));
    } else socket.receive(encodeBatch(messages));
  }

  /** Closes the current socket as the network would; the kernel reconnects. */
  drop(): void {
    this.sockets.at(-1)!.close(1006, "test: dropped");
  }

  /** The messages of a type sent so far (optionally only those matching `where`). */
  of(type: string, where: (m: Sent) => boolean = () => true): Sent[] {
    return this.sent.filter((m) => m.type === `memory_object_${type}` && where(m));
  }

  /** Waits for the `index`-th (from 0) message of a type matching `where`. */
  async next(type: string, where: (m: Sent) => boolean = () => true, index = 0): Promise<Sent> {
    await waitFor(() => this.of(type, where).length > index, `the kernel to send ${type}`, 5_000);
    return this.of(type, where)[index]!;
  }

  supply(reply_to: number, offset: number, bytes: Uint8Array, lockValue = VM_PROT_NONE): Outgoing {
    return {
      message: {
        type: "memory_object_data_supply",
        reply_to,
        seqno: 0,
        offset,
        length: bytes.byteLength,
        lock_value: lockValue,
        precious: false,
      },
      payload: bytes,
    };
  }

  /** A lock request (outbox: a fresh mid each) over pages [first, end). */
  lock(
    first: number,
    end: number,
    fields: Partial<Pick<LockRequestMessage, "should_return" | "should_flush" | "lock_value">>,
  ): { message: LockRequestMessage } {
    const message: LockRequestMessage = {
      type: "memory_object_lock_request",
      mid: this.nextMid++,
      lock_id: this.nextLockId++,
      offset: first * PAGE,
      length: (end - first) * PAGE,
      should_return: MEMORY_OBJECT_RETURN_DIRTY,
      should_flush: false,
      lock_value: VM_PROT_NO_CHANGE,
      ...fields,
    };
    return { message };
  }

  ack(id: number): Outgoing {
    return { message: { type: "ack", id, seqno: 0 } };
  }

  error(reply_to: number, kern_return: number, code: string): Outgoing {
    return { message: { type: "error", reply_to, seqno: 0, kern_return, code, message: code } };
  }

  /** The lock_completed sent for a lock id, if any. */
  completed(lockId: number): Sent | undefined {
    return this.of("lock_completed", (m) => m.lock_id === lockId)[0];
  }
}

/** A page of `value` as a little-endian u64 in its first 8 bytes. */
export function counterPage(value: number): Uint8Array {
  const page = new Uint8Array(PAGE);
  new DataView(page.buffer).setBigUint64(0, BigInt(value), true);
  return page;
}

export function u64(bytes: Uint8Array): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
}
