/**
 * The control socket's message loop: every frame gets a seqno, is decoded and checked, goes
 * through the duplicate and initialisation rules of docs/protocol.md §3 and docs/protocol.md §8, then to its handler.
 * The one place where a socket's errors become `error` messages (CONTRIBUTING.md §5).
 */
import {
  CLOSE_POLICY_VIOLATION,
  CLOSE_TOKEN_EXPIRED,
  DEFAULT_PAGE_SIZE,
  KERN_PROTECTION_FAILURE,
  ProtocolError,
  STATE_CHANGING_TYPES,
  decodeFrame,
  parseKernelMessage,
  peekId,
  KERN_INVALID_ARGUMENT,
  errorFrame,
  missingRight,
  toProtocolError,
  type KernelMessage,
} from "../schema";
import { dispatch, type AfterStep } from "./handlers";
import type { SocketOperations } from "./handlers/transport-operations";
import type { Limits } from "./limits";
import { SequencedError } from "./sequencer";
import { closeQuietly, type SocketSession } from "./sockets";

export async function handleFrame(
  pager: SocketOperations,
  socket: WebSocket,
  data: string | ArrayBuffer,
): Promise<void> {
  const session = pager.sessionOf(socket);
  const kernel = session.kernel;
  let header: Record<string, unknown> | undefined;
  let after: AfterStep | void = undefined;
  let closing: { sockets: WebSocket[]; reason: string } | null = null;
  try {
    ({ result: after } = pager.admit((seqno) => {
      checkFrameSize(data, pager.limits);
      const frame = decodeFrame(data);
      header = frame.header;
      const message = parseKernelMessage(frame);
      checkSessionOrder(message, session.initialized);
      checkGrant(message, session);
      const stateChanging = STATE_CHANGING_TYPES.has(message.type);
      if (stateChanging && message.id <= pager.lastAppliedId(kernel)) {
        // A resend of an applied message: ack again, apply nothing (docs/protocol.md §3).
        const record = pager.kernelRecord(kernel)!;
        const original = message.id === record.last_id ? record.last_seqno : null;
        pager.send(socket, { type: "ack", id: message.id, seqno: original ?? seqno });
        return undefined;
      }
      const step = dispatch(
        {
          pager,
          kernel,
          seqno,
          socket,
          // Only init can run before the page size is fixed, and it does not read this.
          geometry: pager.geometry(pager.pageSize() ?? DEFAULT_PAGE_SIZE),
          reply: (reply, payload) => pager.send(socket, reply, payload),
          reserveReply: () => pager.reserveSend(socket),
        },
        message,
      );
      if (stateChanging) {
        pager.recordApplied(kernel, message.id, seqno);
        pager.sendFirst(socket, { type: "ack", id: message.id, seqno });
      }
      return step;
    }));
  } catch (error) {
    if (!(error instanceof SequencedError)) throw error;
    // Through the kernel's line, like every reply: it must not overtake a supply being read.
    const cause = toProtocolError(
      error.cause,
      `message ${error.seqno} failed unexpectedly`,
      "internal error; the message was not applied",
    );
    pager.send(socket, errorFrame(cause, error.seqno, peekId(header)));
    closing = pager.countError(socket);
  }
  if (closing) {
    // Past an error limit: closed with 1008, once the answers before the error, a data_supply
    // still being read among them, and the error itself have gone out.
    const { sockets, reason } = closing;
    await pager.drained(kernel);
    for (const ws of sockets) closeQuietly(ws, CLOSE_POLICY_VIOLATION, reason);
    return;
  }
  if (tokenExpired(session)) {
    // Told why (the error above), then gone: a socket must not outlive its rights. Closed once
    // the answers before the error (a data_supply still being read among them) have gone out.
    // The alarm closes silent ones at their expiry the same way.
    await pager.drained(kernel);
    closeQuietly(socket, CLOSE_TOKEN_EXPIRED, "the token expired");
    pager.disconnected(socket);
    return;
  }
  if (after) await after();
}

function tokenExpired(session: SocketSession): boolean {
  return session.exp <= Date.now() / 1000;
}

/** Messages that change pages or ask for durability need the write right (docs/security.md). */
const NEEDS_WRITE = new Set(["memory_object_data_return", "memory_object_synchronize"]);

/** The socket's token must still be valid and grant what the message needs. */
function checkGrant(message: KernelMessage, session: SocketSession): void {
  if (tokenExpired(session)) {
    throw new ProtocolError(
      KERN_PROTECTION_FAILURE,
      "unauthorized",
      "the token of this socket has expired: reconnect with a fresh one",
    );
  }
  if (NEEDS_WRITE.has(message.type) && !session.rights.includes("write")) {
    throw missingRight(message.type, "write", session.rights);
  }
}

const encoder = new TextEncoder();

/**
 * A message's JSON is bounded (MAX_HEADER_BYTES), and so is a whole frame: page data travels in
 * the payload, at most max_transfer of it.
 */
function checkFrameSize(data: string | ArrayBuffer, limits: Limits): void {
  // A frame never needs more than a header and one max_transfer of pages.
  const frameBytes = typeof data === "string" ? data.length : data.byteLength;
  const maxFrameBytes = 4 + limits.maxHeaderBytes * 3 + limits.maxTransfer;
  if (frameBytes > maxFrameBytes) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "too_large",
      `frame of ${frameBytes} bytes exceeds MAX_HEADER_BYTES + max_transfer`,
    );
  }
  // In UTF-8 bytes, as on the wire: `data.length` counts UTF-16 units, up to 3x fewer.
  const headerBytes =
    typeof data === "string"
      ? data.length * 3 <= limits.maxHeaderBytes
        ? 0 // certainly within the limit: no need to encode it to count
        : encoder.encode(data).byteLength
      : data.byteLength >= 4
        ? new DataView(data).getUint32(0)
        : 0;
  if (headerBytes > limits.maxHeaderBytes) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "too_large",
      `message header of ${headerBytes} bytes exceeds ${limits.maxHeaderBytes} (MAX_HEADER_BYTES)`,
    );
  }
}

/** init must come first on a socket, and only once (docs/protocol.md §4). */
function checkSessionOrder(message: KernelMessage, initialized: boolean): void {
  const isInit = message.type === "memory_object_init";
  if (!initialized && !isInit) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "not_initialized",
      `${message.type} before memory_object_init: the socket must start with memory_object_init`,
    );
  }
  if (initialized && isInit) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "already_initialized",
      "memory_object_init was already accepted on this socket",
    );
  }
}
