/**
 * How the manager's messages leave. Two rules:
 * - Messages produced while a transaction runs are held and sent only after it commits, so a
 *   rolled-back step never tells a kernel anything (check before, change state in order, reply
 *   after).
 * - Each kernel gets its messages in seqno order. A reply that needs I/O first (a data_supply
 *   read from R2) reserves its place in line, and later messages to that kernel wait behind it:
 *   a lock request must never overtake the data it invalidates (docs/protocol.md §6.6).
 * What leaves for a socket at one moment (a step's commit, a line drained once its reservation
 * is filled) leaves in one call, so a kernel that asked for batches gets it as one frame.
 */
import type { ManagerMessage } from "../schema";
import type { Reply, Sockets } from "./sockets";

interface Letter {
  /** A kernel id (sent on its socket if it has one), or the very socket a message came on. */
  to: string | WebSocket;
  kernel: string;
  /** Unset while reserved and not yet filled. */
  message?: ManagerMessage;
  payload?: Uint8Array;
  /** Not a message: what runs once the step commits (`onCommit`). */
  then?: () => void;
}

export class Mail {
  private held: Letter[] = [];
  /**
   * Where each open transaction's letters begin in `held`, innermost last: a batch's messages
   * each run in a savepoint of the batch's transaction (durable/sequencer.ts), and one that rolls
   * back takes back only its own letters.
   */
  private readonly marks: number[] = [];
  /** Per kernel: letters waiting behind a reservation that is not filled yet. */
  private readonly lines = new Map<string, Letter[]>();
  /** Per kernel: who waits for its line to empty (`drained`). */
  private readonly drainWaiters = new Map<string, (() => void)[]>();

  constructor(private readonly sockets: Sockets) {}

  /**
   * A transaction begins: from now until its `deliver` or `discard`, letters wait for it to
   * commit. Transactions nest (a savepoint within a transaction); only the outermost one's
   * commit sends.
   */
  hold(): void {
    this.marks.push(this.held.length);
  }

  /** Sends now outside a transaction (I/O steps); holds the letter inside one. */
  post(to: string | WebSocket, message: ManagerMessage, payload?: Uint8Array): void {
    this.held.push(this.letter(to, message, payload));
    if (this.marks.length === 0) this.send(this.takeHeld());
  }

  /**
   * Runs `then` once the step commits (at once outside a step); dropped if it rolls back. An
   * HTTP caller's answer must not announce what a rollback undid (durable/http-grants.ts).
   */
  onCommit(then: () => void, { first = false } = {}): void {
    const letter = { to: "", kernel: "", then };
    // `first`: before what this step (one message of a batch) caused, as an ack is.
    if (first) this.held.splice(this.marks.at(-1) ?? 0, 0, letter);
    else this.held.push(letter);
    if (this.marks.length === 0) this.send(this.takeHeld());
  }

  /**
   * Puts a letter before the others of this step (the innermost transaction, one message of a
   * batch): an ack precedes what its message caused.
   */
  postFirst(to: string | WebSocket, message: ManagerMessage): void {
    this.held.splice(this.marks.at(-1) ?? 0, 0, this.letter(to, message));
  }

  /**
   * Reserves the kernel's next place in line for a reply that is not ready yet; returns the
   * function that fills it. Must be called inside the message's ordered step.
   */
  reserve(to: string | WebSocket): (message: ManagerMessage, payload?: Uint8Array) => void {
    const letter = this.letter(to);
    this.held.push(letter);
    return (message, payload) => {
      letter.message = message;
      letter.payload = payload;
      this.drain(letter.kernel);
    };
  }

  /**
   * Resolves once every letter posted so far to the kernel has been sent: a reply still being
   * read (a data_supply from R2) and those behind it. Call after the step's transaction.
   */
  drained(kernel: string): Promise<void> {
    if (!this.lines.has(kernel)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.drainWaiters.get(kernel) ?? [];
      waiters.push(resolve);
      this.drainWaiters.set(kernel, waiters);
    });
  }

  /** The innermost transaction rolled back: what it posted is dropped. */
  discard(): void {
    this.held.length = this.marks.pop() ?? 0;
  }

  /** The innermost transaction committed: the outermost one's commit sends what all posted. */
  deliver(): void {
    this.marks.pop();
    if (this.marks.length === 0) this.send(this.takeHeld());
  }

  /** Takes the held letters, leaving in line those behind a reservation; returns the rest. */
  private takeHeld(): Letter[] {
    const letters = this.held;
    this.held = [];
    const ready: Letter[] = [];
    for (const letter of letters) {
      if (letter.then) {
        ready.push(letter);
        continue;
      }
      const line = this.lines.get(letter.kernel);
      if (line) line.push(letter);
      else if (letter.message) ready.push(letter);
      else this.lines.set(letter.kernel, [letter]);
    }
    return ready;
  }

  private drain(kernel: string): void {
    const line = this.lines.get(kernel);
    if (!line) return;
    const ready: Letter[] = [];
    while (line[0]?.message) ready.push(line.shift()!);
    this.send(ready);
    if (line.length > 0) return;
    this.lines.delete(kernel);
    const waiters = this.drainWaiters.get(kernel) ?? [];
    this.drainWaiters.delete(kernel);
    for (const resolve of waiters) resolve();
  }

  /**
   * Sends letters that leave together, in order. Those for one socket go out in one call, so a
   * socket that takes batches gets them as one frame (docs/protocol.md §11).
   */
  private send(letters: Letter[]): void {
    const bySocket = new Map<WebSocket, Reply[]>();
    const callbacks: (() => void)[] = [];
    for (const letter of letters) {
      if (letter.then) {
        callbacks.push(letter.then);
        continue;
      }
      const socket = typeof letter.to === "string" ? this.sockets.socketOf(letter.to) : letter.to;
      // A kernel with no socket now: its outbox messages are resent after its next init.
      if (!socket) continue;
      const reply = { message: letter.message!, payload: letter.payload };
      const mine = bySocket.get(socket);
      if (mine) mine.push(reply);
      else bySocket.set(socket, [reply]);
    }
    for (const [socket, mine] of bySocket) this.sockets.sendAll(socket, mine);
    for (const callback of callbacks) callback();
  }

  private letter(to: string | WebSocket, message?: ManagerMessage, payload?: Uint8Array): Letter {
    const kernel = typeof to === "string" ? to : this.sockets.session(to).kernel;
    return { to, kernel, message, payload };
  }
}
