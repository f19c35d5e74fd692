/**
 * What a message handler is given. Handlers run inside the sequencer's ordered part: they check
 * first, then change state (all synchronous SQLite), and may return an `after` step for slow I/O
 * that runs once the change has committed (libpager's A/B/C split, docs/architecture.md §3).
 */
import type { ManagerMessage, ObjectGeometry } from "../../schema";
import type { HandlerOperations } from "./operations";

export interface HandlerContext {
  /**
   * The operations a handler may use on the object (durable/handlers/operations.ts), which the
   * Pager implements; not the Pager's parts.
   */
  pager: HandlerOperations;
  /** The kernel the message is from (`http` for the HTTP operations). */
  kernel: string;
  /**
   * Who within kernel `http` asked (the Worker names the token, or the client's address when
   * authentication is off): HTTP synchronizes are budgeted and ordered per caller
   * (docs/security.md). Absent for a socket kernel.
   */
  caller?: string;
  seqno: number;
  /** The object's page size and the limits that apply to this transport. */
  geometry: ObjectGeometry;
  /** Answers the sender, after the ordered part commits. */
  reply(message: ManagerMessage, payload?: Uint8Array): void;
  /**
   * Reserves the sender's place in line for an answer that needs I/O first; later messages to
   * the kernel wait behind it. Returns the function that sends the answer.
   */
  reserveReply(): (message: ManagerMessage, payload?: Uint8Array) => void;
  /** The sender's socket, when the message came over one. */
  socket: WebSocket | null;
}

/** Slow I/O to run after the ordered part has committed. */
export type AfterStep = () => Promise<void>;

export type Handler<M> = (ctx: HandlerContext, message: M) => AfterStep | void;
