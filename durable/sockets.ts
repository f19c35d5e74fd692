/**
 * The kernels' control sockets. Each is a hibernatable WebSocket tagged with its kernel id; its
 * attachment (which survives hibernation) says whether the kernel has done its init and whether
 * it asked for batches.
 */
import {
  CLOSE_REPLACED,
  CLOSE_TOKEN_EXPIRED,
  KERN_RESOURCE_SHORTAGE,
  MAX_BATCH_MESSAGES,
  ProtocolError,
  encodeBatch,
  encodeFrame,
  type ManagerMessage,
  type Right,
} from "../schema";
import { ErrorBudget } from "./error-budget";

/** What the caller's token grants, as the Worker verified it at the upgrade. */
export interface SocketGrant {
  rights: Right[];
  /** Expiry in seconds since the epoch. */
  exp: number;
  /** Who is asking, as the Worker names it (`token:…` with authentication on; worker/caller.ts). */
  caller?: string;
}

export interface SocketSession extends SocketGrant {
  kernel: string;
  initialized: boolean;
  /**
   * The kernel asked for batches at its init (docs/protocol.md §11): it may send them, and gets
   * its replies batched. Absent in the attachments of sockets accepted before batches existed.
   */
  batch?: boolean;
  /** Errors answered in the current minute, for the garbage limit of docs/protocol.md §8. */
  errors: number;
  errorWindowStart: number;
}

export class Sockets {
  private readonly sessions = new WeakMap<WebSocket, SocketSession>();
  /** The earliest token expiry of the sockets accepted since `takeNewExpiry` last ran, in ms. */
  private newExpiry: number | null = null;

  /** Errors per kernel id across its sockets: twice what one socket may have. */
  private readonly kernelErrors: ErrorBudget;
  /**
   * Errors per token across all its sockets and kernel ids (new ids buy no fresh errors): four
   * times what one socket may have. Only tokens count: without authentication every client is
   * one caller, and one noisy test would lock out the rest.
   */
  private readonly tokenErrors: ErrorBudget;

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly errorsPerMinute: number,
    /** The most payload bytes one frame carries (read at each use: tests change it). */
    private readonly maxTransfer: () => number,
  ) {
    this.kernelErrors = new ErrorBudget(2 * errorsPerMinute);
    this.tokenErrors = new ErrorBudget(4 * errorsPerMinute);
  }

  private kernelErrorsReason(): string {
    return `more than ${2 * this.errorsPerMinute} errors in a minute on this kernel's sockets; wait a minute`;
  }

  private tokenErrorsReason(): string {
    return `more than ${4 * this.errorsPerMinute} errors in a minute on this token's sockets; wait a minute`;
  }

  /**
   * Accepts a kernel's new socket; an older socket of the same kernel is closed with 4409
   * (docs/protocol.md §2), after the new one is accepted.
   */
  accept(kernel: string, grant: SocketGrant): WebSocket {
    if (this.kernelErrors.exhausted(kernel)) {
      throw new ProtocolError(KERN_RESOURCE_SHORTAGE, "too_many_errors", this.kernelErrorsReason());
    }
    const token = tokenOf(grant);
    if (token !== null && this.tokenErrors.exhausted(token)) {
      throw new ProtocolError(KERN_RESOURCE_SHORTAGE, "too_many_errors", this.tokenErrorsReason());
    }
    const previous = this.ctx.getWebSockets(kernel);
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server, [kernel]);
    this.save(server, {
      kernel,
      ...grant,
      initialized: false,
      errors: 0,
      errorWindowStart: Date.now(),
    });
    // Tokens of a deployment without authentication never expire (MAX_SAFE_INTEGER).
    const expiry = grant.exp * 1000;
    if (Number.isSafeInteger(expiry)) this.newExpiry = Math.min(this.newExpiry ?? expiry, expiry);
    for (const old of previous) closeQuietly(old, CLOSE_REPLACED, "replaced by a newer socket");
    return pair[0];
  }

  /**
   * The socket's session. Every message reads it several times, and deserializing the attachment
   * is a structured clone, so it is cached per socket object (hibernation drops the cache with
   * the instance; the attachment stays the truth).
   */
  session(ws: WebSocket): SocketSession {
    let session = this.sessions.get(ws);
    if (!session) {
      session = ws.deserializeAttachment() as SocketSession;
      this.sessions.set(ws, session);
    }
    return session;
  }

  private save(ws: WebSocket, session: SocketSession): void {
    ws.serializeAttachment(session);
    this.sessions.set(ws, session);
  }

  markInitialized(ws: WebSocket, batch: boolean): void {
    this.save(ws, { ...this.session(ws), initialized: true, batch });
  }

  /** The kernel's open, initialized socket, if it has one. */
  socketOf(kernel: string): WebSocket | undefined {
    return this.ctx
      .getWebSockets(kernel)
      .find((ws) => ws.readyState === WebSocket.OPEN && this.session(ws).initialized);
  }

  /** The kernel's open sockets, initialized or not. */
  socketsOf(kernel: string): WebSocket[] {
    return this.ctx.getWebSockets(kernel).filter((ws) => ws.readyState === WebSocket.OPEN);
  }

  isConnected(kernel: string): boolean {
    return this.socketOf(kernel) !== undefined;
  }

  /** Whether the kernel has any open socket, initialized or not. */
  hasSocket(kernel: string): boolean {
    return this.socketsOf(kernel).length > 0;
  }

  /**
   * Sends replies that leave together, in order: to a socket that asked for batches as few batch
   * frames as their bounds allow (docs/protocol.md §11), else one frame each.
   */
  sendAll(ws: WebSocket, replies: readonly Reply[]): void {
    if (replies.length === 1 || !this.session(ws).batch) {
      for (const { message, payload } of replies) sendOn(ws, message, payload);
      return;
    }
    for (const frame of framesOf(replies, this.maxTransfer())) {
      if (frame.length === 1) sendOn(ws, frame[0]!.message, frame[0]!.payload);
      else sendRaw(ws, encodeBatch(frame));
    }
  }

  /**
   * Counts an error answered on the socket. Past `ERRORS_PER_MINUTE` in a minute the socket must
   * be closed with 1008, and past twice that on the kernel's sockets together every one of them
   * (docs/protocol.md §8): returns those to close, which the caller closes once the answers before
   * the error (and the error itself) have gone out.
   */
  countError(ws: WebSocket): { sockets: WebSocket[]; reason: string } | null {
    const session = this.session(ws);
    const token = tokenOf(session);
    if (token !== null && this.tokenErrors.count(token)) {
      // Past the token's budget across all its sockets, whatever their kernel ids.
      const sockets = this.ctx
        .getWebSockets()
        .filter((other) => tokenOf(this.session(other)) === token);
      return { sockets, reason: this.tokenErrorsReason() };
    }
    if (this.kernelErrors.count(session.kernel)) {
      // Past the kernel's budget across all its sockets: every one of them goes.
      return { sockets: this.ctx.getWebSockets(session.kernel), reason: this.kernelErrorsReason() };
    }
    const now = Date.now();
    const fresh = now - session.errorWindowStart > 60_000;
    const errors = fresh ? 1 : session.errors + 1;
    this.save(ws, {
      ...session,
      errors,
      errorWindowStart: fresh ? now : session.errorWindowStart,
    });
    if (errors <= this.errorsPerMinute) return null;
    return { sockets: [ws], reason: `more than ${this.errorsPerMinute} errors in a minute` };
  }

  all(): WebSocket[] {
    return this.ctx.getWebSockets();
  }

  /** When the first token of an open socket expires (ms since the epoch), or null. */
  /** The earliest expiry among sockets accepted since the last call, for the alarm (ms). */
  takeNewExpiry(): number | null {
    const at = this.newExpiry;
    this.newExpiry = null;
    return at;
  }

  nextExpiry(): number | null {
    let first: number | null = null;
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      const at = this.session(ws).exp * 1000;
      // Tokens of a deployment without authentication never expire (MAX_SAFE_INTEGER).
      if (Number.isSafeInteger(at) && (first === null || at < first)) first = at;
    }
    return first;
  }

  /**
   * Closes every open socket whose token has expired (CLOSE_TOKEN_EXPIRED) and returns them: a
   * socket must not outlive its rights, still taking lock requests it can no longer answer.
   */
  closeExpired(now = Date.now()): WebSocket[] {
    const expired = this.ctx
      .getWebSockets()
      .filter((ws) => ws.readyState === WebSocket.OPEN && this.session(ws).exp * 1000 <= now);
    for (const ws of expired) closeQuietly(ws, CLOSE_TOKEN_EXPIRED, "the token expired");
    return expired;
  }
}

/** The token a socket was opened with, when authentication named one (else null). */
function tokenOf(grant: SocketGrant): string | null {
  return grant.caller?.startsWith("token:") ? grant.caller : null;
}

/** A message for a kernel, with its pages if it carries any. */
export interface Reply {
  message: ManagerMessage;
  payload?: Uint8Array;
}

/**
 * The JSON header of a batch the manager sends stays under this many bytes, below the 64 KiB a
 * kernel may take as a frame's header (MAX_HEADER_BYTES by default), as the client keeps its own.
 */
const MAX_BATCH_HEADER_BYTES = 60_000;

/**
 * Splits replies, in order, into batch frames within the bounds of docs/protocol.md §11: at most
 * MAX_BATCH_MESSAGES messages and max_transfer payload bytes each, headers under
 * MAX_BATCH_HEADER_BYTES. A `memory_object_ready` goes in a frame of its own: it is what tells
 * the kernel that batches are on.
 */
function framesOf(replies: readonly Reply[], maxTransfer: number): Reply[][] {
  const frames: Reply[][] = [];
  let frame: Reply[] = [];
  let headerBytes = 2;
  let payloadBytes = 0;
  const close = () => {
    if (frame.length > 0) frames.push(frame);
    frame = [];
    headerBytes = 2;
    payloadBytes = 0;
  };
  for (const reply of replies) {
    const alone = reply.message.type === "memory_object_ready";
    const bytes = utf8Length(JSON.stringify(reply.message)) + 1;
    const pages = reply.payload?.byteLength ?? 0;
    if (
      alone ||
      frame.length === MAX_BATCH_MESSAGES ||
      headerBytes + bytes > MAX_BATCH_HEADER_BYTES ||
      payloadBytes + pages > maxTransfer
    ) {
      close();
    }
    frame.push(reply);
    headerBytes += bytes;
    payloadBytes += pages;
    if (alone) close();
  }
  close();
  return frames;
}

function utf8Length(text: string): number {
  // Replies are ASCII but for what a kernel wrote into them (an unknown type named in an error).
  return /^[\x00-\x7f]*$/.test(text) ? text.length : encoder.encode(text).byteLength;
}

const encoder = new TextEncoder();

/** Sends a message as text, or as a binary frame when it carries page data. */
function sendOn(ws: WebSocket, message: ManagerMessage, payload?: Uint8Array): void {
  sendRaw(ws, payload ? encodeFrame(message, payload) : JSON.stringify(message));
}

function sendRaw(ws: WebSocket, frame: string | Uint8Array): void {
  try {
    ws.send(frame);
  } catch {
    // The socket closed under us; outbox messages are resent after the kernel's next init.
  }
}

export function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed.
  }
}
