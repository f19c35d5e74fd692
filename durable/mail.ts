/**
 * How the manager's messages leave. Two rules:
 * - Messages produced while a transaction runs are held and sent only after it commits, so a
 *   rolled-back step never tells a kernel anything (check before, change state in order, reply
 *   after).
 * - Each kernel gets its messages in seqno order. A reply that needs I/O first (a data_supply
 *   read from R2) reserves its place in line, and later messages to that kernel wait behind it:
 *   a lock request must never overtake the data it invalidates (docs/protocol.md §6.6).
 */
import type { ManagerMessage } from "../schema";
import { sendOn, type Sockets } from "./sockets";

interface Letter {
  /** A kernel id (sent on its socket if it has one), or the very socket a message came on. */
  to: string | WebSocket;
  kernel: string;
  /** Unset while reserved and not yet filled. */
  message?: ManagerMessage;
  payload?: Uint8Array;
}

export class Mail {
  private held: Letter[] = [];
  private holding = false;
  /** Per kernel: letters waiting behind a reservation that is not filled yet. */
  private readonly lines = new Map<string, Letter[]>();
  /** Per kernel: who waits for its line to empty (`drained`). */
  private readonly drainWaiters = new Map<string, (() => void)[]>();

  constructor(private readonly sockets: Sockets) {}

  /** From now until `deliver` or `discard`, letters wait for the transaction to commit. */
  hold(): void {
    this.holding = true;
  }

  /** Sends now outside a transaction (I/O steps); holds the letter inside one. */
  post(to: string | WebSocket, message: ManagerMessage, payload?: Uint8Array): void {
    this.held.push(this.letter(to, message, payload));
    if (!this.holding) this.deliver();
  }

  /** Puts a letter before the others of this step: an ack precedes what its message caused. */
  postFirst(to: string | WebSocket, message: ManagerMessage): void {
    this.held.unshift(this.letter(to, message));
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

  discard(): void {
    this.holding = false;
    this.held = [];
  }

  deliver(): void {
    this.holding = false;
    const letters = this.held;
    this.held = [];
    for (const letter of letters) {
      const line = this.lines.get(letter.kernel);
      if (line) line.push(letter);
      else if (letter.message) this.send(letter);
      else this.lines.set(letter.kernel, [letter]);
    }
  }

  private drain(kernel: string): void {
    const line = this.lines.get(kernel);
    if (!line) return;
    while (line[0]?.message) this.send(line.shift()!);
    if (line.length > 0) return;
    this.lines.delete(kernel);
    const waiters = this.drainWaiters.get(kernel) ?? [];
    this.drainWaiters.delete(kernel);
    for (const resolve of waiters) resolve();
  }

  private send({ to, message, payload }: Letter): void {
    if (typeof to === "string") this.sockets.send(to, message!, payload);
    else sendOn(to, message!, payload);
  }

  private letter(to: string | WebSocket, message?: ManagerMessage, payload?: Uint8Array): Letter {
    const kernel = typeof to === "string" ? to : this.sockets.session(to).kernel;
    return { to, kernel, message, payload };
  }
}
