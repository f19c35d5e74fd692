/**
 * The kernel side of one control socket (docs/protocol.md §2–docs/protocol.md §6): the init/ready handshake, every
 * kernel → manager message as a typed async call, and survival across the network. It keeps each
 * state-changing message until acked and resends it after reconnecting, processes each outbox
 * message (completions, lock requests) exactly once by its mid, and reconnects with jittered,
 * capped backoff. When the manager accepts batches (docs/protocol.md §11), what is sent in one
 * turn leaves as one frame (client/batcher.ts) and batched replies are unpacked. It keeps the
 * atomic groups it has open (docs/protocol.md §12) and names them in every init, so a commit cut
 * by a drop finishes after the resume. Every call takes a signal and a timeout
 * (client/call-options.ts): one given up before its message left never sends it.
 * Browser-safe: standard WebSocket, no Node imports.
 */
import {
  CLOSE_NORMAL,
  CLOSE_POLICY_VIOLATION,
  CLOSE_REPLACED,
  CLOSE_TOKEN_EXPIRED,
  DEFAULT_PAGE_SIZE,
  HTTP_PATHS,
  KERN_RESOURCE_SHORTAGE,
  MAX_BATCH_MESSAGES,
  MAX_OPEN_GROUPS,
  VM_PROT_NO_CHANGE,
  VM_PROT_READ,
  decodeFrameOrBatch,
  encodeFrame,
  isBatch,
  objectPath,
  type AckMessage,
  type DataSupplyMessage,
  type ErrorMessage,
  type LockRequestMessage,
  type ManagerMessage,
  type ReadyMessage,
  type SynchronizeCompletedMessage,
} from "../schema";
import { Batcher, MAX_BATCH_HEADER_BYTES } from "./batcher";
import { checkCallOptions, watchCall, type CallOptions } from "./call-options";
import { Emitter } from "./emitter";
import { CallAbortedError, ConnectionClosedError, KernReturnError } from "./errors";

export interface KernelOptions {
  /** The service's base URL, e.g. `http://127.0.0.1:8787` (http/https or ws/wss). */
  url: string;
  object: string;
  /** This kernel's id, stable across reconnects (docs/protocol.md §1). */
  kernel: string;
  /** A bearer token, sent as `access_token` (browsers cannot set socket headers). */
  token?: string;
  /** The page size to init with; it must match the object's once fixed. Default 4096. */
  pageSize?: number;
  /** Reconnect backoff: the first delay and the cap, in ms (jittered). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Bytes of unacked messages kept at once; a send beyond waits for acks (backpressure). */
  maxPendingBytes?: number;
  /** The WebSocket constructor (defaults to the global one). */
  WebSocket?: typeof WebSocket;
  /**
   * How long `connect` waits for the first ready before giving up (default: forever, like a Mach
   * kernel). Browsers cannot see why an upgrade failed (401, 403, unreachable), so a caller that
   * must report such failures sets this. Later reconnects are never given up.
   */
  connectTimeoutMs?: number;
  /**
   * The object's mode to ask for (docs/protocol.md §10): `true` makes a new object coherent; an
   * object of the other mode refuses the init (`mode_mismatch`). Unset: either mode.
   */
  coherent?: boolean;
  /**
   * Ask for batches (docs/protocol.md §11), default true: if the manager accepts, messages sent
   * in the same turn leave as one frame and replies may arrive batched. `false` sends one frame
   * per message.
   */
  batch?: boolean;
}

export interface KernelEvents extends Record<string, unknown> {
  /** The handshake completed: after `connect`, and once at the end of each outage. */
  connected: ReadyMessage;
  /**
   * The socket that was up went down: once per outage, however many reconnect attempts fail in
   * it (a failed attempt is a `reconnecting` of its own, not another `disconnected`).
   */
  disconnected: { code: number; reason: string };
  /**
   * A reconnect attempt is scheduled: `attempt` counts 1, 2, … within the outage, `delayMs` is
   * the jittered backoff before it (0 when the connection reconnects at once by itself).
   */
  reconnecting: { attempt: number; delayMs: number };
  completion: SynchronizeCompletedMessage;
  lock_request: LockRequestMessage;
  /** The manager says this kernel's cache may be stale: drop cached pages (docs/protocol.md §6.6). */
  flush: ReadyMessage;
  destroyed: { reason: string };
  error: Error;
}

/** The answer to a data_request: page bytes, or `null` when the range was never written. */
export interface DataReply {
  data: Uint8Array | null;
  lockValue: number;
  precious: boolean;
  seqno: number;
}

interface Outgoing {
  id: number;
  frame: string | Uint8Array;
  bytes: number;
  /** State-changing messages are kept until acked; requests until answered. */
  stateChanging: boolean;
  /** The atomic group it belongs to (docs/protocol.md §12), if any. */
  group?: number;
  /** A synchronize that commits `group`. */
  commits?: boolean;
  /** Called with the answer as it arrives, before any later message is handled. */
  onAnswer?: (value: unknown) => void;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

type Deferred<T> = { resolve(value: T): void; reject(error: Error): void };

export class KernelConnection extends Emitter<KernelEvents> {
  private socket: WebSocket | null = null;
  private readyMessage: ReadyMessage | null = null;
  private nextId = 1;
  private initId = 0;
  /** The highest outbox mid processed: each takes effect once (docs/protocol.md §3). */
  private receivedMid = 0;
  /** The mid the last `received` sent reported (what the manager may have dropped). */
  private receivedSaid = 0;
  /** `terminate` was called: no `received` may follow it. */
  private terminating = false;
  private receivedTimer: ReturnType<typeof setTimeout> | null = null;
  /** Sent or queued, by id (Map order is id order: ids only grow). */
  private readonly outgoing = new Map<number, Outgoing>();
  private pendingBytes = 0;
  private readonly completions = new Map<number, Deferred<SynchronizeCompletedMessage>>();
  private readonly unlocks: { id: number; offset: number; length: number; access: number }[] = [];
  private spaceWaiters: (() => void)[] = [];
  private readyWaiters: Deferred<ReadyMessage>[] = [];
  private stopped: Error | null = null;
  /** Reconnect attempts made in this outage (0 while connected). */
  private attempt = 0;
  /**
   * No ready since `disconnected` was emitted (or since the start): further failures belong to
   * the same outage and are not announced again.
   */
  private down = true;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  /** Set while the current socket's ready accepted batches. */
  private batcher: Batcher | null = null;
  /**
   * Atomic groups open at the manager as far as this kernel knows (docs/protocol.md §12): from
   * the first grouped message sent until the synchronize committing it is answered. Every init
   * names them in `open_groups`, so a commit cut by a drop can finish after the resume.
   */
  private readonly openGroups = new Set<number>();
  /** Groups given up (a call aborted) that the manager may still hold: the next init discards them. */
  private readonly abandonedGroups = new Set<number>();
  private lastGroup = 0;

  private constructor(private readonly options: KernelOptions) {
    super();
  }

  /**
   * Connects and completes the handshake; later drops are healed on their own.
   *
   * @example
   * const kernel = await KernelConnection.connect({ url, object: "db", kernel: "vm1" });
   * await kernel.dataReturn(0, page);
   * await kernel.synchronize(0, 4096, VM_SYNC_SYNCHRONOUS);
   */
  static async connect(options: KernelOptions): Promise<KernelConnection> {
    const connection = new KernelConnection(options);
    connection.open();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      if (options.connectTimeoutMs === undefined) return;
      timer = setTimeout(
        () =>
          reject(
            new ConnectionClosedError(
              `no memory_object_ready within ${options.connectTimeoutMs} ms`,
            ),
          ),
        options.connectTimeoutMs,
      );
    });
    try {
      await Promise.race([connection.whenReady(), timeout]);
    } catch (error) {
      connection.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return connection;
  }

  /** The latest `memory_object_ready`, or null while disconnected. */
  get ready(): ReadyMessage | null {
    return this.readyMessage;
  }

  get connected(): boolean {
    return this.readyMessage !== null;
  }

  /** Resolves once connected and initialised (at once if it is). */
  whenReady(): Promise<ReadyMessage> {
    if (this.stopped) return Promise.reject(this.stopped);
    if (this.readyMessage) return Promise.resolve(this.readyMessage);
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * memory_object_data_request: the pages of a page-aligned range. `onReply`, if given, is called
   * with the answer the moment it arrives, before any later message of the same frame is handled
   * (a promise settles only after them): a cache places the pages there, so a lock request that
   * follows the supply finds them (docs/protocol.md §10).
   */
  dataRequest(
    offset: number,
    length: number,
    desiredAccess = VM_PROT_READ,
    options: CallOptions & { onReply?: (reply: DataReply) => void } = {},
  ): Promise<DataReply> {
    const { onReply, ...callOptions } = options ?? {};
    return this.enqueue(
      "dataRequest",
      { type: "memory_object_data_request", offset, length, desired_access: desiredAccess },
      undefined,
      false,
      callOptions,
      onReply as ((value: unknown) => void) | undefined,
    ) as Promise<DataReply>;
  }

  /**
   * memory_object_data_unlock: resolves with the manager's granting lock request, the first one
   * over exactly this range whose lock_value no longer prohibits `desiredAccess` (a demotion or a
   * flush of the same range, docs/protocol.md §10, is not a grant). `onGrant` is called with it
   * the moment it arrives, before the lock request is handled as one.
   */
  dataUnlock(
    offset: number,
    length: number,
    desiredAccess: number,
    options: { onGrant?: (grant: LockRequestMessage) => void } = {},
  ): Promise<LockRequestMessage> {
    const id = this.nextId;
    this.unlocks.push({ id, offset, length, access: desiredAccess });
    return this.enqueue(
      "dataUnlock",
      { type: "memory_object_data_unlock", offset, length, desired_access: desiredAccess },
      undefined,
      false,
      {},
      options.onGrant as ((value: unknown) => void) | undefined,
    ) as Promise<LockRequestMessage>;
  }

  /**
   * memory_object_data_return: resolves with the ack, once the pages are durably accepted (with
   * `group`, durably staged: nobody sees them until the group's synchronize, docs/protocol.md §12).
   */
  dataReturn(
    offset: number,
    data: Uint8Array,
    flags: { dirty?: boolean; kernelCopy?: boolean; group?: number } & CallOptions = {},
  ): Promise<AckMessage> {
    return this.enqueue(
      "dataReturn",
      {
        type: "memory_object_data_return",
        offset,
        length: data.byteLength,
        dirty: flags.dirty ?? true,
        kernel_copy: flags.kernelCopy ?? false,
        ...(flags?.group !== undefined && { group: flags.group }),
      },
      data,
      true,
      flags,
    ) as Promise<AckMessage>;
  }

  /**
   * memory_object_set_size (docs/protocol.md §13): sets the object's size in bytes; resolves with
   * the ack. With `group`, staged until the group's synchronize, like a grouped return.
   */
  setSize(size: number, options: { group?: number } & CallOptions = {}): Promise<AckMessage> {
    if (!Number.isSafeInteger(size) || size < 0) {
      return Promise.reject(new TypeError("setSize: size must be a byte count (0 or more)"));
    }
    return this.enqueue(
      "setSize",
      {
        type: "memory_object_set_size",
        size,
        ...(options?.group !== undefined && { group: options.group }),
      },
      undefined,
      true,
      options,
    ) as Promise<AckMessage>;
  }

  /**
   * memory_object_synchronize: resolves with its own completion (docs/protocol.md §6), across
   * reconnects; rejects with a `KernReturnError` when the manager answers `error`. With `group`,
   * it commits that atomic group first, at its own seqno (docs/protocol.md §12).
   *
   * Aborted, it rejects at once: unsent, it is never sent, and its group is given up (discarded
   * at the next init); sent already, it may still take effect.
   */
  synchronize(
    offset: number,
    length: number,
    syncFlags: number,
    options: { group?: number } & CallOptions = {},
  ): Promise<SynchronizeCompletedMessage> {
    let queued: { id: number; answered: Promise<unknown> };
    try {
      checkCallOptions("synchronize", options);
      const group = groupField("synchronize", options.group);
      queued = this.queue(
        { type: "memory_object_synchronize", offset, length, sync_flags: syncFlags, ...group },
        undefined,
        true,
      );
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const { id, answered } = queued;
    const completion = new Promise<SynchronizeCompletedMessage>((resolve, reject) =>
      this.completions.set(id, { resolve, reject }),
    );
    answered.catch((error: Error) => this.settleCompletion(id, error));
    // The watch covers the completion: a synchronize acked (sent) may still be waited for.
    const stop = watchCall("synchronize", options, (error) => {
      this.withdraw(id, error);
      this.settleCompletion(id, error);
    });
    completion.then(stop, stop);
    return completion;
  }

  /**
   * A group number not in use by this kernel (docs/protocol.md §12), for a commit: numbers grow,
   * so one given up is not reused while the manager may still hold it.
   */
  newGroup(): number {
    do this.lastGroup = this.lastGroup >= Number.MAX_SAFE_INTEGER ? 1 : this.lastGroup + 1;
    while (this.openGroups.has(this.lastGroup) || this.abandonedGroups.has(this.lastGroup));
    return this.lastGroup;
  }

  /** The atomic groups this kernel has open (what its next init names in `open_groups`). */
  get groups(): readonly number[] {
    return [...this.openGroups];
  }

  /**
   * Gives up an atomic group (a commit failed or was aborted): its messages not sent yet are
   * never sent (their calls reject with `reason`), and the next init no longer names it, so the
   * manager discards it there unless its synchronize was applied first. A no-op for a group not
   * open (committed already, or never used).
   */
  abandonGroup(group: number, reason: Error = new ConnectionClosedError("group abandoned")): void {
    if (!this.openGroups.delete(group)) return;
    this.abandonedGroups.add(group);
    for (const entry of [...this.outgoing.values()]) {
      if (entry.group !== group) continue;
      this.batcher?.withdraw(entry.frame);
      if (entry.commits) this.settleCompletion(entry.id, reason);
      this.settleOutgoing(entry.id, { error: reason });
    }
  }

  /** memory_object_lock_completed: the answer to a lock request. */
  lockCompleted(lockId: number, offset: number, length: number): Promise<AckMessage> {
    return this.enqueue(
      "lockCompleted",
      { type: "memory_object_lock_completed", lock_id: lockId, offset, length },
      undefined,
      true,
    ) as Promise<AckMessage>;
  }

  /** memory_object_terminate: the manager forgets this kernel; the connection ends. */
  async terminate(): Promise<void> {
    // The manager forgets the kernel and its outbox: a `received` after the terminate would name
    // mids it no longer knows.
    this.terminating = true;
    await this.enqueue("terminate", { type: "memory_object_terminate" }, undefined, true);
    // The manager discarded this kernel's groups with it (docs/protocol.md §12).
    this.openGroups.clear();
    this.stop(new ConnectionClosedError("terminated"));
  }

  /** Closes the socket for good; pending calls reject with `ConnectionClosedError`. */
  close(): void {
    this.stop(new ConnectionClosedError("closed by the client"));
  }

  // --- sending -----------------------------------------------------------------------------

  /**
   * Queues one message (sent at once if connected) and resolves with its answer. An abort or
   * timeout in `options` withdraws it: unsent, it never leaves (nor is it resent after a
   * reconnect); a grouped one gives up its whole group.
   */
  private async enqueue(
    call: string,
    message: { type: string; group?: number; [field: string]: unknown },
    payload: Uint8Array | undefined,
    stateChanging: boolean,
    options: CallOptions = {},
    onAnswer?: (value: unknown) => void,
  ): Promise<unknown> {
    checkCallOptions(call, options);
    groupField(call, message.group);
    const { id, answered } = this.queue(message, payload, stateChanging, onAnswer);
    const stop = watchCall(call, options, (error) => this.withdraw(id, error));
    answered.then(stop, stop);
    return answered;
  }

  /** Puts one message in `outgoing` under a new id and sends it if connected; throws if it cannot. */
  private queue(
    message: { type: string; group?: number; [field: string]: unknown },
    payload: Uint8Array | undefined,
    stateChanging: boolean,
    onAnswer?: (value: unknown) => void,
  ): { id: number; answered: Promise<unknown> } {
    if (this.stopped) throw this.stopped;
    const group = message.group;
    const commits = group !== undefined && message.type === "memory_object_synchronize";
    if (group !== undefined) this.openGroup(group);
    const id = this.nextId++;
    const header = { ...message, id };
    const frame = payload ? encodeFrame(header, payload) : JSON.stringify(header);
    const bytes = typeof frame === "string" ? frame.length : frame.byteLength;
    const answered = new Promise((resolve, reject) => {
      const entry = { id, frame, bytes, stateChanging, group, commits, onAnswer, resolve, reject };
      this.outgoing.set(id, entry);
    });
    this.pendingBytes += bytes;
    if (this.readyMessage) this.transmit(frame);
    return { id, answered };
  }

  /**
   * A group's first message opens it here (the manager opens it when that message arrives). One
   * past MAX_OPEN_GROUPS is refused before anything is sent; when groups given up fill the
   * manager's room, the socket is cycled so that the init discards them.
   */
  private openGroup(group: number): void {
    if (this.openGroups.has(group)) return;
    if (this.openGroups.size >= MAX_OPEN_GROUPS) {
      throw new KernReturnError(
        KERN_RESOURCE_SHORTAGE,
        "too_many_groups",
        `this kernel already has ${MAX_OPEN_GROUPS} open atomic groups (MAX_OPEN_GROUPS); commit or abandon one first`,
      );
    }
    if (this.openGroups.size + this.abandonedGroups.size >= MAX_OPEN_GROUPS) this.cycle();
    this.openGroups.add(group);
  }

  /** A call given up: its message, if not sent yet, never is; a grouped one gives up its group. */
  private withdraw(id: number, error: CallAbortedError): void {
    const entry = this.outgoing.get(id);
    if (!entry) return;
    this.batcher?.withdraw(entry.frame);
    // The group first: settling a synchronize would close its group as if answered.
    if (entry.group !== undefined) this.abandonGroup(entry.group, error);
    this.settleOutgoing(id, { error });
  }

  /**
   * Waits while the unacked bytes exceed the bound. Callers that stream (the page cache, the
   * CLI) await this between frames; one message is always let through.
   */
  async capacity(options: CallOptions = {}): Promise<void> {
    checkCallOptions("capacity", options);
    while (this.overCapacity) {
      let stop = () => {};
      try {
        await new Promise<void>((resolve, reject) => {
          this.spaceWaiters.push(resolve);
          stop = watchCall("capacity", options, reject);
        });
      } finally {
        stop();
      }
    }
  }

  /**
   * True while `capacity()` would wait. A caller that checks this before awaiting sends without
   * yielding while there is room, so what it sends in one turn leaves as one batch.
   */
  get overCapacity(): boolean {
    const max = this.options.maxPendingBytes ?? 8 * 1024 * 1024;
    return this.pendingBytes > max && !this.stopped;
  }

  /** One message, as a single frame: batched with the rest of this turn's when batches are on. */
  private transmit(frame: string | Uint8Array): void {
    if (this.batcher) this.batcher.add(frame);
    else this.sendFrame(frame);
  }

  private sendFrame(frame: string | Uint8Array): void {
    try {
      this.socket?.send(frame);
    } catch {
      // The socket is closing; the message stays queued and is resent after the next ready.
    }
  }

  private settleOutgoing(id: number, outcome: { value?: unknown; error?: Error }): void {
    const entry = this.outgoing.get(id);
    if (!entry) return;
    this.outgoing.delete(id);
    this.pendingBytes -= entry.bytes;
    // Its synchronize answered (ack: committed; error: refused, and the group discarded).
    if (entry.commits) this.openGroups.delete(entry.group!);
    if (outcome.error) entry.reject(outcome.error);
    else {
      entry.onAnswer?.(outcome.value);
      entry.resolve(outcome.value);
    }
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const wake of waiters) wake();
  }

  private settleCompletion(id: number, outcome: SynchronizeCompletedMessage | Error): void {
    const waiter = this.completions.get(id);
    if (!waiter) return;
    this.completions.delete(id);
    if (outcome instanceof Error) waiter.reject(outcome);
    else waiter.resolve(outcome);
  }

  // --- the socket --------------------------------------------------------------------------

  private open(): void {
    const Socket = this.options.WebSocket ?? globalThis.WebSocket;
    const socket = new Socket(controlUrl(this.options));
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (this.socket === socket) this.sendInit();
    });
    socket.addEventListener("message", (event) => {
      if (this.socket === socket) this.receive(event.data as string | ArrayBuffer);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket === socket) this.lost(event.code, event.reason);
    });
    socket.addEventListener("error", () => {
      // Browsers follow an error with a close event, which decides about reconnecting; Node's
      // WebSocket sends no close after a failed connect, so a socket still current shortly
      // after its error is taken as lost here.
      setTimeout(() => {
        if (this.socket === socket) this.lost(1006, "connection failed");
      }, 50);
    });
  }

  private sendInit(): void {
    this.initId = this.nextId++;
    // The init reports received_mid itself.
    this.receivedSaid = this.receivedMid;
    this.socket?.send(
      JSON.stringify({
        type: "memory_object_init",
        id: this.initId,
        page_size: this.options.pageSize ?? DEFAULT_PAGE_SIZE,
        received_mid: this.receivedMid,
        // Omitted, not false, when not asked: the init of a kernel without batches is unchanged.
        ...(this.options.batch === false ? {} : { batch: true }),
        // Every group not named is discarded by this init (docs/protocol.md §12), the abandoned
        // ones included; omitted when none is open, as before groups existed.
        ...(this.openGroups.size > 0 ? { open_groups: [...this.openGroups] } : {}),
        ...(this.options.coherent !== undefined && { coherent: this.options.coherent }),
      }),
    );
    this.abandonedGroups.clear();
  }

  /** A frame from the manager: a plain one, or a batch whose messages are handled in order. */
  private receive(data: string | ArrayBuffer): void {
    let decoded;
    try {
      decoded = decodeFrameOrBatch(data);
    } catch (error) {
      this.emit("error", error as Error);
      return;
    }
    for (const message of isBatch(decoded) ? decoded.messages : [decoded]) {
      if (message instanceof Error) this.emit("error", message);
      else this.handle(message.header as unknown as ManagerMessage, message.payload);
    }
  }

  private handle(message: ManagerMessage, payload: Uint8Array | null): void {
    switch (message.type) {
      case "memory_object_ready":
        return this.onReady(message);
      case "ack":
        return this.onAck(message.id, message);
      case "error":
        return this.onError(message);
      case "memory_object_data_supply":
        return this.answer(message.reply_to, supplyReply(message, payload));
      case "memory_object_data_unavailable":
        return this.answer(message.reply_to, {
          data: null,
          lockValue: 0,
          precious: false,
          seqno: message.seqno,
        } satisfies DataReply);
      case "memory_object_data_error":
        return this.settleOutgoing(message.reply_to, {
          error: new KernReturnError(
            message.kern_return,
            "data_error",
            message.reason,
            message.seqno,
          ),
        });
      case "memory_object_synchronize_completed":
        if (!this.takeOutbox(message.mid)) return;
        this.settleCompletion(message.reply_to, message);
        return this.emit("completion", message);
      case "memory_object_lock_request":
        if (!this.takeOutbox(message.mid)) return;
        this.grantUnlock(message);
        return this.emit("lock_request", message);
      case "memory_object_destroy":
        return this.onDestroy(message.reason);
    }
  }

  private onReady(ready: ReadyMessage): void {
    this.readyMessage = ready;
    this.attempt = 0;
    this.down = false;
    this.batcher = this.batchesFor(ready);
    // A kernel that restarted may find the manager ahead of it: new ids must be higher.
    this.nextId = Math.max(this.nextId, ready.last_id + 1);
    // Messages at or below last_id were applied; their acks were lost with the old socket.
    for (const entry of [...this.outgoing.values()]) {
      if (entry.stateChanging && entry.id <= ready.last_id) this.onAck(entry.id);
    }
    for (const entry of this.outgoing.values()) this.transmit(entry.frame);
    if (ready.flush) this.emit("flush", ready);
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const waiter of waiters) waiter.resolve(ready);
    this.emit("connected", ready);
  }

  /**
   * A batcher for this socket if the kernel asked for batches and the ready accepted them. Its
   * frames go only to the socket it was made for: a frame queued before a drop is not sent on the
   * next socket (the messages are resent from `outgoing` after the next ready).
   */
  private batchesFor(ready: ReadyMessage): Batcher | null {
    if (this.options.batch === false || ready.batch !== true) return null;
    const socket = this.socket;
    return new Batcher(
      (frame) => {
        if (this.socket === socket) this.sendFrame(frame);
      },
      {
        messages: MAX_BATCH_MESSAGES,
        payloadBytes: ready.max_transfer,
        headerBytes: MAX_BATCH_HEADER_BYTES,
      },
    );
  }

  /** An ack covers every lower id (docs/protocol.md §3). */
  private onAck(id: number, ack?: AckMessage): void {
    for (const entry of [...this.outgoing.values()]) {
      if (entry.id > id) break;
      if (entry.stateChanging)
        this.settleOutgoing(entry.id, { value: ack ?? { type: "ack", id, seqno: -1 } });
    }
  }

  private onError(message: ErrorMessage): void {
    const error = KernReturnError.from(message);
    if (message.mid !== undefined) {
      // A synchronize that failed for good, delivered through the outbox (docs/protocol.md).
      if (!this.takeOutbox(message.mid)) return;
      if (message.reply_to !== null) this.settleCompletion(message.reply_to, error);
      return this.emit("error", error);
    }
    if (message.reply_to !== null && message.reply_to === this.initId) {
      if (message.code === "mid_ahead") {
        // The manager forgot this kernel (terminated or deleted): mids start again from 1.
        this.receivedMid = 0;
        this.receivedSaid = 0;
        return this.sendInit();
      }
      return this.stop(error);
    }
    if (message.reply_to !== null && this.outgoing.has(message.reply_to)) {
      this.settleCompletion(message.reply_to, error);
      return this.settleOutgoing(message.reply_to, { error });
    }
    this.emit("error", error);
  }

  private answer(id: number, value: unknown): void {
    this.settleOutgoing(id, { value });
  }

  /**
   * True the first time a mid is seen; schedules `received` so the outbox may drop it. With
   * batches it rides on the next frame the kernel sends anyway (an msync's, typically), so it
   * costs the manager no step of its own; the timer sends it alone if nothing goes out first.
   */
  private takeOutbox(mid: number): boolean {
    if (mid <= this.receivedMid) return false;
    this.receivedMid = mid;
    this.batcher?.ride(() => this.receivedMessage());
    this.receivedTimer ??= setTimeout(() => {
      this.receivedTimer = null;
      if (!this.readyMessage) return;
      const message = this.receivedMessage();
      if (message) this.transmit(message);
    }, 20);
    return true;
  }

  /** `received` up to the newest mid seen, unless that was said already. */
  private receivedMessage(): string | null {
    if (this.terminating || this.receivedSaid >= this.receivedMid) return null;
    this.receivedSaid = this.receivedMid;
    return JSON.stringify({ type: "received", id: this.nextId++, mid: this.receivedMid });
  }

  /**
   * A lock request that grants a pending data_unlock's range answers that call: it leaves the
   * pages cached (no flush) and its lock_value no longer prohibits the access asked for.
   */
  private grantUnlock(lock: LockRequestMessage): void {
    const grants = (access: number) =>
      !lock.should_flush &&
      lock.lock_value !== VM_PROT_NO_CHANGE &&
      (lock.lock_value & access) === 0;
    // Unlocks given up or settled otherwise (an error, the connection stopped) go first.
    for (let i = this.unlocks.length - 1; i >= 0; i--) {
      if (!this.outgoing.has(this.unlocks[i]!.id)) this.unlocks.splice(i, 1);
    }
    const index = this.unlocks.findIndex(
      (u) => u.offset === lock.offset && u.length === lock.length && grants(u.access),
    );
    if (index < 0) return;
    const [unlock] = this.unlocks.splice(index, 1);
    this.settleOutgoing(unlock!.id, { value: lock });
  }

  private onDestroy(reason: string): void {
    // The object is gone and its name starts afresh: nothing pending can complete any more.
    const error = new ConnectionClosedError(`the object was deleted: ${reason}`);
    for (const id of [...this.outgoing.keys()]) this.settleOutgoing(id, { error });
    for (const id of [...this.completions.keys()]) this.settleCompletion(id, error);
    this.receivedMid = 0;
    this.receivedSaid = 0;
    this.openGroups.clear();
    this.abandonedGroups.clear();
    this.emit("destroyed", { reason });
  }

  /**
   * The current socket closed or failed: the socket that was up (the outage begins) or a
   * reconnect attempt that never reached a ready (the outage goes on). Every failed attempt ends
   * here, with a close (browsers) or an error (Node): each is announced as the next
   * `reconnecting`, never as another `disconnected`.
   */
  private lost(code: number, reason: string): void {
    this.socket = null;
    this.readyMessage = null;
    this.batcher = null;
    this.wentDown(code, reason);
    if (this.stopped) return;
    if (code === CLOSE_REPLACED) {
      return this.stop(new ConnectionClosedError("replaced by another socket of the same kernel"));
    }
    if (code === CLOSE_POLICY_VIOLATION) {
      return this.stop(new ConnectionClosedError(`closed by the manager: ${reason}`));
    }
    if (code === CLOSE_TOKEN_EXPIRED) {
      // Reconnecting with the same token would be refused: a fresh connection needs a fresh one.
      return this.stop(new ConnectionClosedError("the token expired: connect with a fresh token"));
    }
    const { initialMs = 100, maxMs = 10_000 } = this.options.backoff ?? {};
    const cap = Math.min(maxMs, initialMs * 2 ** this.attempt++);
    const delayMs = Math.round(cap * (0.5 + Math.random() / 2));
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.open();
    }, delayMs);
    this.emit("reconnecting", { attempt: this.attempt, delayMs });
  }

  /** `disconnected`, unless this outage was announced already. */
  private wentDown(code: number, reason: string): void {
    if (this.down) return;
    this.down = true;
    this.emit("disconnected", { code, reason });
  }

  /**
   * Drops the socket and reconnects at once, so the next init discards the groups given up
   * (docs/protocol.md §12). What is unacked is resent after the ready, as after any drop.
   */
  private cycle(): void {
    const socket = this.socket;
    if (!socket || !this.readyMessage) return;
    this.batcher?.flush();
    this.socket = null;
    this.readyMessage = null;
    this.batcher = null;
    try {
      socket.close(CLOSE_NORMAL, "discarding abandoned atomic groups");
    } catch {
      // Already closing.
    }
    this.wentDown(CLOSE_NORMAL, "discarding abandoned atomic groups");
    if (this.stopped) return; // a listener closed the connection
    this.emit("reconnecting", { attempt: ++this.attempt, delayMs: 0 });
    if (!this.stopped) this.open();
  }

  private stop(error: Error): void {
    if (this.stopped) return;
    this.stopped = error;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.receivedTimer) clearTimeout(this.receivedTimer);
    // What this turn sent leaves before the close, as it would have unbatched.
    this.batcher?.flush();
    const socket = this.socket;
    this.socket = null;
    this.readyMessage = null;
    this.batcher = null;
    try {
      socket?.close(CLOSE_NORMAL, "client closed");
    } catch {
      // Already closing.
    }
    for (const id of [...this.outgoing.keys()]) this.settleOutgoing(id, { error });
    for (const id of [...this.completions.keys()]) this.settleCompletion(id, error);
    for (const waiter of this.readyWaiters) waiter.reject(error);
    this.readyWaiters = [];
    for (const wake of this.spaceWaiters) wake();
    this.spaceWaiters = [];
  }
}

function supplyReply(message: DataSupplyMessage, payload: Uint8Array | null): DataReply {
  return {
    data: payload ?? new Uint8Array(0),
    lockValue: message.lock_value,
    precious: message.precious,
    seqno: message.seqno,
  };
}

/** `…/v1/objects/{object}/control?kernel=…[&access_token=…]` on ws: or wss:. */
export function controlUrl(
  options: Pick<KernelOptions, "url" | "object" | "kernel" | "token">,
): string {
  const url = new URL(objectPath(HTTP_PATHS.control, options.object), withSlash(options.url));
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  url.searchParams.set("kernel", options.kernel);
  if (options.token) url.searchParams.set("access_token", options.token);
  return url.toString();
}

function withSlash(base: string): string {
  return base.endsWith("/") ? base : `${base}/`;
}

/** The optional `group` field of docs/protocol.md §12, checked, as a field to spread. */
function groupField(call: string, group: number | undefined): { group?: number } {
  if (group === undefined) return {};
  if (!Number.isSafeInteger(group) || group <= 0) {
    throw new TypeError(`${call}: group must be a positive integer`);
  }
  return { group };
}
