/**
 * Messages produced while a transaction runs are held here and sent only after it commits, so a
 * rolled-back step never tells a kernel anything (check before, change state in order, reply after).
 */
import type { ManagerMessage } from "../schema";
import { sendOn, type Sockets } from "./sockets";

interface Letter {
  /** A kernel id (sent on its socket if it has one), or the very socket a message came on. */
  to: string | WebSocket;
  message: ManagerMessage;
  payload?: Uint8Array;
}

export class Mail {
  private letters: Letter[] = [];
  private holding = false;

  constructor(private readonly sockets: Sockets) {}

  /** From now until `deliver` or `discard`, letters wait for the transaction to commit. */
  hold(): void {
    this.holding = true;
  }

  /** Sends now outside a transaction (I/O steps); holds the letter inside one. */
  post(to: string | WebSocket, message: ManagerMessage, payload?: Uint8Array): void {
    this.letters.push({ to, message, payload });
    if (!this.holding) this.deliver();
  }

  /** Puts a letter before the others of this step: an ack precedes what its message caused. */
  postFirst(to: string | WebSocket, message: ManagerMessage): void {
    this.letters.unshift({ to, message });
  }

  discard(): void {
    this.holding = false;
    this.letters = [];
  }

  deliver(): void {
    this.holding = false;
    const letters = this.letters;
    this.letters = [];
    for (const { to, message, payload } of letters) {
      if (typeof to === "string") this.sockets.send(to, message, payload);
      else sendOn(to, message, payload);
    }
  }
}
