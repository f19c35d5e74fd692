/**
 * The control socket's message loop: every frame gets a seqno, is decoded and checked, goes
 * through the duplicate and initialisation rules of docs/protocol.md §3 and docs/protocol.md §8, then to its handler.
 * A batch frame of a kernel that asked for batches is one step whose messages each go through
 * that same path, one seqno each (docs/protocol.md §11).
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
  decodeFrameOrBatch,
  isBatch,
  parseKernelMessage,
  peekId,
  KERN_INVALID_ARGUMENT,
  errorFrame,
  missingRight,
  toProtocolError,
  type Batch,
  type Frame,
  type KernelMessage,
} from "../schema";
import { GroupRefusal } from "./groups";
import { dispatch, type AfterStep } from "./handlers";
import type { SocketOperations } from "./handlers/transport-operations";
import type { Limits } from "./limits";
import { LastApplied } from "./last-applied";
import { SequencedError } from "./sequencer";
import { closeQuietly, type SocketSession } from "./sockets";

/** The sockets to close with 1008 once an error has gone out (durable/sockets.ts `countError`). */
type Closing = { sockets: WebSocket[]; reason: string } | null;

/** What one message's ordered step left to do: its I/O, and a close past an error limit. */
interface Outcome {
  after: AfterStep | void;
  closing: Closing;
}

export async function handleFrame(
  pager: SocketOperations,
  socket: WebSocket,
  data: string | ArrayBuffer,
): Promise<void> {
  const session = pager.sessionOf(socket);
  const kernel = session.kernel;
  const { inBatch, messages } = messagesOf(data, session, pager.limits);
  const lastApplied = new LastApplied(pager, kernel);
  const apply = (seqno: number, index: number): Outcome => ({
    after: applyMessage(pager, socket, seqno, messages[index]!, inBatch, lastApplied),
    closing: null,
  });
  const fail = (error: SequencedError, index: number): Outcome => ({
    after: undefined,
    closing: answerError(pager, socket, error, messages[index]!.header),
  });
  let outcomes: Outcome[];
  if (inBatch) {
    outcomes = pager.admitEach(messages.length, {
      ordered: apply,
      failed: fail,
      finish: () => lastApplied.save(),
      retry: () => lastApplied.forget(),
    });
  } else {
    try {
      outcomes = [
        pager.admit((seqno) => {
          const outcome = apply(seqno, 0);
          lastApplied.save();
          return outcome;
        }).result,
      ];
    } catch (error) {
      if (!(error instanceof SequencedError)) throw error;
      outcomes = [fail(error, 0)];
    }
  }
  // The I/O of the step's messages starts in their order, once the step has committed.
  const running = outcomes.flatMap(({ after }) => (after ? [after()] : []));
  const closing = outcomes.find((outcome) => outcome.closing)?.closing;
  if (closing) {
    // Past an error limit: closed with 1008, once the answers before the error, a data_supply
    // still being read among them, and the error itself have gone out.
    const { sockets, reason } = closing;
    await pager.drained(kernel);
    for (const ws of sockets) closeQuietly(ws, CLOSE_POLICY_VIOLATION, reason);
  } else if (tokenExpired(session)) {
    // Told why (the error above), then gone: a socket must not outlive its rights. Closed once
    // the answers before the error (a data_supply still being read among them) have gone out.
    // The alarm closes silent ones at their expiry the same way.
    await pager.drained(kernel);
    closeQuietly(socket, CLOSE_TOKEN_EXPIRED, "the token expired");
    pager.disconnected(socket);
  }
  await settleAll(running);
}

/** Waits for every step's I/O; the first failure, if any, is rethrown once all have ended. */
async function settleAll(running: Promise<void>[]): Promise<void> {
  if (running.length === 1) return running[0];
  for (const result of await Promise.allSettled(running)) {
    if (result.status === "rejected") throw result.reason;
  }
}

/** One message of a frame, not yet read. */
interface Unread {
  /** Reads the message, throwing what is wrong with the frame or with it. */
  read(): Frame;
  /** Its header once known, for the `reply_to` of its error (docs/protocol.md §8). */
  header?: Record<string, unknown>;
}

/**
 * The frame's messages, each as the function that reads it and throws what is wrong with it.
 * A socket that did not ask for batches has one message per frame, read as always. One that
 * did may send a batch (docs/protocol.md §11): a frame that cannot be parsed is still one
 * message, whose error is the frame's; a batch whose payloads pass max_transfer is refused one
 * message at a time, each with its own error.
 */
function messagesOf(
  data: string | ArrayBuffer,
  session: SocketSession,
  limits: Limits,
): { inBatch: boolean; messages: Unread[] } {
  const readOne = () => {
    checkFrameSize(data, limits);
    return decodeFrame(data);
  };
  if (!session.batch) return { inBatch: false, messages: [{ read: readOne }] };
  let decoded: Frame | Batch;
  try {
    checkHeaderSize(data, limits);
    decoded = decodeFrameOrBatch(data);
  } catch (error) {
    return { inBatch: false, messages: [{ read: () => raise(error) }] };
  }
  if (!isBatch(decoded)) {
    const frame = decoded;
    return { inBatch: false, messages: [{ read: () => (checkFrameSize(data, limits), frame) }] };
  }
  const tooLarge =
    decoded.payloadBytes > limits.maxTransfer
      ? new ProtocolError(
          KERN_INVALID_ARGUMENT,
          "too_large",
          `the batch carries ${decoded.payloadBytes} payload bytes, over max_transfer (${limits.maxTransfer})`,
        )
      : null;
  return {
    inBatch: true,
    messages: decoded.messages.map((message) =>
      message instanceof ProtocolError
        ? { read: () => raise(message) }
        : { header: message.header, read: () => (tooLarge ? raise(tooLarge) : message) },
    ),
  };
}

function raise(error: unknown): never {
  throw error;
}

/**
 * One message's ordered part, the same for a frame of its own and for a message of a batch: read
 * and checked, the initialisation and duplicate rules (docs/protocol.md §3, docs/protocol.md §4), the grant,
 * then its handler; a state-changing message is recorded and acked. Throws what is wrong with it
 * (its step rolls back); returns the handler's `after` step.
 */
function applyMessage(
  pager: SocketOperations,
  socket: WebSocket,
  seqno: number,
  unread: Unread,
  inBatch: boolean,
  lastApplied: LastApplied,
): AfterStep | void {
  const session = pager.sessionOf(socket);
  const kernel = session.kernel;
  const frame = unread.read();
  unread.header = frame.header;
  const message = parseKernelMessage(frame);
  if (inBatch && message.type === "memory_object_init") {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "bad_frame",
      "memory_object_init may not be inside a batch: send it in a frame of its own",
    );
  }
  checkSessionOrder(message, session.initialized);
  if (lastApplied.terminated) {
    // The kernel is forgotten and its socket closes once the step's answers are out.
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "bad_frame",
      `${message.type} after memory_object_terminate in the same batch: the kernel is forgotten, nothing after its terminate applies`,
    );
  }
  checkGrant(message, session);
  const stateChanging = STATE_CHANGING_TYPES.has(message.type);
  if (stateChanging && message.id <= lastApplied.id()) {
    // A resend of an applied message: ack again, apply nothing (docs/protocol.md §3).
    const original = lastApplied.seqnoOf(message.id);
    pager.send(socket, { type: "ack", id: message.id, seqno: original ?? seqno });
    observeMessage(pager, seqno, kernel, message, "duplicate");
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
    // A terminate forgot the kernel: its ids start afresh and nothing is left to record.
    if (message.type === "memory_object_terminate") lastApplied.forgotten();
    else lastApplied.applied(message.id, seqno);
    pager.sendFirst(socket, { type: "ack", id: message.id, seqno });
  }
  observeMessage(pager, seqno, kernel, message, "ok");
  return step;
}

/** What observers see of a message (durable/observers.ts): its type, range and outcome. */
function observeMessage(
  pager: SocketOperations,
  seqno: number,
  kernel: string,
  message: { type?: unknown; id?: unknown; offset?: unknown; length?: unknown },
  outcome: string,
): void {
  const { type, id, offset, length } = message;
  // Before what it caused (a completion, a lock request), which the step posted already.
  pager.observe(
    { type: "message", seqno, kernel, message: type, id, offset, length, outcome },
    { first: true },
  );
}

/**
 * Answers a message that failed with its `error` (the socket's one conversion,
 * CONTRIBUTING.md §5) and counts it against the error limits; returns the sockets to close if it
 * passed one.
 * Through the kernel's line, like every reply: it must not overtake a supply being read.
 */
function answerError(
  pager: SocketOperations,
  socket: WebSocket,
  error: SequencedError,
  header: Record<string, unknown> | undefined,
): Closing {
  let cause = toProtocolError(
    error.cause,
    `message ${error.seqno} failed unexpectedly`,
    "internal error; the message was not applied",
  );
  // The errors that change something (docs/protocol.md §12), after the message rolled back: a
  // group's synchronize frees its number; a refused grouped message discards its group, so the
  // rest of it can never commit without it.
  const { kernel, initialized } = pager.sessionOf(socket);
  const group = groupOf(header);
  if (cause instanceof GroupRefusal) {
    pager.transact(cause.effect);
  } else if (group !== null && initialized && pager.kernelRecord(kernel)) {
    // (A kernel its terminate forgot earlier in the batch has no groups to discard.)
    pager.transact(() => pager.failGroup(kernel, group));
    if (cause.code !== "group_discarded") {
      cause = new ProtocolError(
        cause.kernReturn,
        cause.code,
        `${cause.message}; atomic group ${group} is discarded: its later messages and its synchronize are refused`,
      );
    }
  }
  pager.send(socket, errorFrame(cause, error.seqno, peekId(header)));
  observeMessage(pager, error.seqno, kernel, header ?? {}, cause.code);
  return pager.countError(socket);
}

/** The group of a refused data_return or set_size, when it named a valid one; else null. */
function groupOf(header: Record<string, unknown> | undefined): number | null {
  const type = header?.type;
  if (type !== "memory_object_data_return" && type !== "memory_object_set_size") return null;
  const group = header?.group;
  return typeof group === "number" && Number.isSafeInteger(group) && group > 0 ? group : null;
}

function tokenExpired(session: SocketSession): boolean {
  return session.exp <= Date.now() / 1000;
}

/** Messages that change pages or ask for durability need the write right (docs/security.md). */
const NEEDS_WRITE = new Set([
  "memory_object_data_return",
  "memory_object_synchronize",
  "memory_object_set_size",
]);

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
  checkHeaderSize(data, limits);
}

/** The frame's JSON, a batch's whole array too, is at most MAX_HEADER_BYTES. */
function checkHeaderSize(data: string | ArrayBuffer, limits: Limits): void {
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
