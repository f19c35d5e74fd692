/**
 * The HTTP operations of docs/protocol.md §9 as the Durable Object serves them: each is a message of
 * kernel `http`, takes a seqno, and runs the same handlers as the socket path. The Worker routes
 * them (schema/http-api.ts defines them once) and calls them by typed RPC, page bodies streamed
 * both ways; synchronize alone comes as `fetch` (`handleHttp`), for the request signal that
 * withdraws it when its caller goes away: an RPC call has no such signal. Query strings and bodies
 * are checked here, with the definition's schemas, inside the admission: a bad one consumes its
 * seqno like a bad frame (docs/protocol.md §8).
 */
import {
  CLOSE_NORMAL,
  DEFAULT_PAGE_SIZE,
  GRANT_HEADER,
  HTTP_KERNEL,
  KERN_INVALID_ARGUMENT,
  KERN_RESOURCE_SHORTAGE,
  OPERATION_HEADER,
  ProtocolError,
  bodyTooLarge,
  checkPageRange,
  checkSize,
  checkWithinObject,
  errorResponse,
  invalidField,
  isPageSize,
  modeMismatch,
  objectDeleted,
  pageSizeMismatch,
  pageSpanOf,
  parseObjectName,
  toProtocolError,
  type ManagerMessage,
  type PageSpan,
} from "../schema";
import {
  PageMapQuery,
  ReadPagesQuery,
  SetSizeBody,
  SetSizeQuery,
  SynchronizeBody,
  WritePagesQuery,
  parseRequest,
  type DeleteResultBody,
  type HttpOutcome,
  type ObjectStatusBody,
  type OutstandingSyncBody,
  type SetSizeResultBody,
  type WriteResultBody,
} from "../schema/http-api";
import { cutSpan } from "./coherence";
import { checkRoomFor } from "./handlers/data-return";
import { handleSynchronize } from "./handlers/synchronize";
import type { HandlerContext } from "./handlers";
import type { HttpOperations } from "./handlers/transport-operations";
import { SequencedError } from "./sequencer";
import { receiveBody, type Upload } from "./incoming-body";
import type { ReadPlan } from "./page-store";
import { R2_READS_PER_REQUEST } from "./r2-bounds";

/**
 * Answers an operation the Worker forwarded with `fetch`, named in a header: synchronize, the
 * only one (the control socket's upgrade goes to durable/upgrade.ts).
 */
export async function handleHttp(pager: HttpOperations, request: Request): Promise<Response> {
  const operation = request.headers.get(OPERATION_HEADER);
  if (operation !== "synchronize" && operation !== "events") {
    return errorResponse(
      new ProtocolError(KERN_INVALID_ARGUMENT, "not_found", "no such operation"),
    );
  }
  try {
    return operation === "events" ? events(pager) : await synchronize(pager, request);
  } catch (error) {
    return errorResponse(causeOf(error), "HTTP operation failed");
  }
}

/**
 * `GET …/events`: a new observer (durable/observers.ts), first told the object's status at this
 * seqno, then everything after it. Forwarded with `fetch`, so its stream ends when its caller
 * goes away.
 */
function events(pager: HttpOperations): Response {
  const { result: stream } = pager.admit(() =>
    pager.openObserver({ type: "hello", status: statusOf(pager) }),
  );
  return new Response(stream, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      // No proxy on the way may hold events back to fill a buffer.
      "x-accel-buffering": "no",
    },
  });
}

/** `GET …/map`: where the pages are, aggregated (durable/page-map.ts). */
export function pageMap(pager: HttpOperations, query: Record<string, string>) {
  const { result } = pager.admit(() => {
    const { cells } = parseRequest(PageMapQuery, query);
    return pager.pageMap(cells ?? DEFAULT_MAP_CELLS);
  });
  return result;
}

const DEFAULT_MAP_CELLS = 256;

/** What an object operation called by RPC takes: the object's name (the Worker checked it). */
export interface ObjectCall {
  name: string;
}

/**
 * Runs an operation called by RPC: its value, or its error as a body the Worker turns back into
 * the same `ProtocolError` (an RPC error would lose its code).
 */
export async function answerCall<T>(
  pager: HttpOperations,
  call: ObjectCall,
  operation: (pager: HttpOperations) => T | Promise<T>,
): Promise<HttpOutcome<T>> {
  try {
    pager.rememberName(parseObjectName(call.name));
    return { value: await operation(pager) };
  } catch (error) {
    return { error: toProtocolError(causeOf(error), "HTTP operation failed").toJSON().error };
  }
}

/** The error a sequenced step threw, not the wrapper that carries its seqno. */
function causeOf(error: unknown): unknown {
  return error instanceof SequencedError ? error.cause : error;
}

export function stat(pager: HttpOperations): ObjectStatusBody {
  return pager.admit(() => statusOf(pager)).result;
}

/**
 * `pager.admit` for an HTTP operation that observers see as a message of kernel `http`
 * (durable/observers.ts): with its outcome, and the range of what it answers when it has one.
 */
function admitObserved<T>(
  pager: HttpOperations,
  message: string,
  ordered: (seqno: number) => T,
): { seqno: number; result: T } {
  try {
    const admitted = pager.admit((seqno) => {
      const result = ordered(seqno);
      const { offset, length } = (result ?? {}) as { offset?: unknown; length?: unknown };
      // Before what it caused (a completion), which the step posted already.
      pager.observe(
        { type: "message", seqno, kernel: HTTP_KERNEL, message, offset, length, outcome: "ok" },
        { first: true },
      );
      return result;
    });
    return admitted;
  } catch (error) {
    if (error instanceof SequencedError) {
      const { code } = toProtocolError(error.cause, "HTTP operation failed");
      pager.observe({
        type: "message",
        seqno: error.seqno,
        kernel: HTTP_KERNEL,
        message,
        outcome: code,
      });
    }
    throw error;
  }
}

/** The status at this point in seqno order. */
function statusOf(pager: HttpOperations): ObjectStatusBody {
  return {
    object: pager.objectName(),
    page_size: pager.pageSize(),
    max_size: pager.maxSize(pager.pageSize() ?? DEFAULT_PAGE_SIZE),
    ...pageCounts(pager),
    journal_pages: pager.journalPages(),
    size: pager.objectSize(),
    coherent: pager.coherent() ?? false,
    seqno: pager.nextSeqno(),
    kernels: pager.kernelStates(),
    syncs: pager.outstandingSyncCount(),
  };
}

function pageCounts(pager: HttpOperations): { pages: number; bytes: number } {
  const pages = pager.storedPages();
  return { pages, bytes: pages * (pager.pageSize() ?? 0) };
}

export function listSyncs(pager: HttpOperations): { syncs: OutstandingSyncBody[] } {
  const { result } = pager.admit(() =>
    pager.outstandingSyncs().map(({ kernel, id, seqno, offset, length, sync_flags, since }) => ({
      kernel,
      id,
      seqno,
      offset,
      length,
      sync_flags,
      since,
    })),
  );
  return { syncs: result };
}

/** A page read's answer: its length, and its bytes as a stream (none for a HEAD). */
export interface PagesAnswer {
  length: number;
  body: ReadableStream<Uint8Array> | null;
}

/** Any byte range; pages never written read as zeros. */
export async function readPages(
  pager: HttpOperations,
  query: Record<string, string>,
  isHead: boolean,
): Promise<PagesAnswer> {
  const { result } = admitObserved(pager, "pages GET", (seqno) => {
    const { offset, length } = parseRequest(ReadPagesQuery, query);
    if (length > pager.limits.maxBodyBytes) {
      throw invalidField(
        "length",
        `must not exceed ${pager.limits.maxBodyBytes} bytes per request`,
      );
    }
    const pageSize = pager.pageSize() ?? DEFAULT_PAGE_SIZE;
    checkWithinObject(offset, length, pager.maxSize(pageSize));
    const span = pageSpanOf(offset, length, pageSize);
    const planned = () => ({
      offset,
      length,
      pageSize,
      span,
      plan: planPieces(pager, span, pageSize),
    });
    // A coherent object's writers return the range's pages first (docs/protocol.md §10.7).
    if (pager.coherent() && span.end > span.first) {
      return pager.httpAccess(seqno, span, false, planned);
    }
    return planned();
  });
  const { offset, length, pageSize, span, plan } = await result;
  if (isHead) {
    // Judged like the GET (range, limits, fragmentation) but no page is read from storage.
    pager.finishRead(plan);
    return { length, body: null };
  }
  // Streamed a piece at a time, so a 64 MiB read holds about one piece in memory, not 64 MiB.
  const piecePages = piecePagesOf(pageSize);
  const pieces: { first: number; end: number }[] = [];
  for (let first = span.first; first < span.end; first += piecePages) {
    pieces.push({ first, end: Math.min(span.end, first + piecePages) });
  }
  const readPiece = async ({ first, end }: { first: number; end: number }) => {
    // Bulk reads use cached pages but do not fill the cache: one export must not evict the pages
    // kernels keep faulting on.
    const bytes = await pager.readPlannedPiece(plan, first, end, pageSize);
    const from = Math.max(offset, first * pageSize) - first * pageSize;
    const to = Math.min(offset + length, end * pageSize) - first * pageSize;
    return bytes.subarray(from, to);
  };
  // The plan holds its segments in R2 until the stream ends, however it ends.
  const finish = () => pager.finishRead(plan);
  let head: Uint8Array;
  try {
    // The first piece is read before answering, so a storage failure up front is a JSON error.
    head = pieces.length > 0 ? await readPiece(pieces[0]!) : new Uint8Array(0);
  } catch (error) {
    finish();
    throw error;
  }
  let next = 1;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(head);
      if (pieces.length <= 1) finish();
    },
    async pull(controller) {
      if (next >= pieces.length) return controller.close();
      try {
        controller.enqueue(await readPiece(pieces[next++]!));
      } catch (error) {
        finish();
        throw error;
      }
      if (next >= pieces.length) finish();
    },
    cancel: finish,
  });
  return { length, body };
}

/**
 * Fixes, at this point in seqno order, which version of each page of `span` the read gets.
 * Refused before any byte is sent when past the subrequest cap: the body would be cut mid-way.
 */
function planPieces(pager: HttpOperations, span: PageSpan, pageSize: number): ReadPlan {
  const plan = pager.planRead(span, pageSize);
  const reads = pager.r2ReadsFor(plan, piecePagesOf(pageSize));
  if (reads > R2_READS_PER_REQUEST) {
    pager.finishRead(plan);
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "too_fragmented",
      `this range is spread over ${reads} segment reads, more than the ` +
        `${R2_READS_PER_REQUEST} one request may make; read a smaller range`,
    );
  }
  return plan;
}

/** Bytes read from storage per piece of a streamed HTTP read. */
const READ_PIECE_BYTES = 1024 * 1024;

function piecePagesOf(pageSize: number): number {
  return Math.max(1, Math.floor(READ_PIECE_BYTES / pageSize));
}

/**
 * A dirty data_return of kernel `http`: answered once the pages are durably journaled. The body
 * is received first (a large one spooled into SQLite as it arrives: never whole in memory, never
 * one SQL value over 1 MiB), then journaled in one ordered step, so it lands all at once at one
 * seqno like a frame.
 */
export async function writePages(
  pager: HttpOperations,
  query: Record<string, string>,
  upload: Upload,
): Promise<WriteResultBody> {
  const epoch = pager.destroyedCount();
  const body = await receiveBody(pager, upload, spoolPageSize(pager, query));
  try {
    const { seqno, result } = admitObserved(pager, "pages PUT", (seqno) => {
      if (body.tooLarge) throw bodyTooLarge(pager.limits.maxBodyBytes);
      const { offset, page_size, coherent } = parseRequest(WritePagesQuery, query);
      const pageSize = fixPageSize(pager, page_size, coherent);
      if (pager.destroyedCount() !== epoch) {
        throw objectDeleted("meanwhile");
      }
      if (pageSize !== body.pageSize) {
        // Only when a first init fixed another page size while this body was arriving.
        throw new ProtocolError(
          KERN_INVALID_ARGUMENT,
          "page_size_mismatch",
          `the object's page size became ${pageSize} while the body arrived; send it again`,
        );
      }
      const ctx = httpContext(pager, seqno, pageSize);
      const span = checkPageRange(offset, body.length, ctx.geometry);
      checkRoomFor(ctx, span);
      const apply = (version: number) => {
        // Granted later, in another step: the journal may have filled meanwhile.
        if (version !== seqno) checkRoomFor(ctx, span);
        if (body.spool === null) pager.journalReturn(span.first, pageSize, body.bytes, version);
        else pager.journalSpool(body.spool, span.first, span.end - span.first, version);
        return { offset, length: body.length };
      };
      // A write by kernel `http`: every holder of the range gives it up first (docs/protocol.md §10.7).
      return pager.coherent() ? pager.httpAccess(seqno, span, true, apply) : apply(seqno);
    });
    await listIfCreated(pager);
    return { ...(await result), seqno };
  } finally {
    body.done();
  }
}

/**
 * Sets the object's size as kernel `http` (docs/protocol.md §13): answered once durably recorded.
 * Like a write, it fixes a fresh object's page size.
 */
export async function setSize(
  pager: HttpOperations,
  query: Record<string, string>,
  text: string,
): Promise<SetSizeResultBody> {
  const { seqno, result } = admitObserved(pager, "PATCH", (seqno) => {
    const body = jsonObjectOf(text);
    if (body === null) {
      throw new ProtocolError(
        KERN_INVALID_ARGUMENT,
        "bad_json",
        "body must be a JSON object {size}",
      );
    }
    const { size } = parseRequest(SetSizeBody, body);
    const { page_size, coherent } = parseRequest(SetSizeQuery, query);
    const pageSize = fixPageSize(pager, page_size, coherent);
    const maxSize = pager.maxSize(pageSize);
    checkSize(size, maxSize);
    const apply = (version: number) => {
      pager.resize(size, pageSize, version);
      return { object: pager.objectName(), size };
    };
    if (!pager.coherent() || size >= pager.objectSize()) return apply(seqno);
    // A shrink writes every page from the new size on: their holders give them up first
    // (docs/protocol.md §10.7).
    return pager.httpAccess(seqno, cutSpan(size, maxSize, pageSize), true, apply);
  });
  await listIfCreated(pager);
  return { ...(await result), seqno };
}

/** A write that created the object answers once the directory lists it (docs/dashboard.md). */
async function listIfCreated(pager: HttpOperations): Promise<void> {
  if (!pager.manifestMissing()) return;
  await pager.publishManifest().catch((error: unknown) => {
    console.warn(`directory entry of ${pager.objectName()} not written: ${String(error)}`);
  });
}

/**
 * The page size a body is cut into while it arrives: the object's, else the one asked, else the
 * default. Only judged here; `fixPageSize` checks it in order.
 */
function spoolPageSize(pager: HttpOperations, query: Record<string, string>): number {
  const asked = Number(query.page_size);
  return pager.pageSize() ?? (isPageSize(asked) ? asked : DEFAULT_PAGE_SIZE);
}

/**
 * Answers when the completion is due (docs/protocol.md §9), or with the error that replaced it. The
 * request counts against its caller's budget, not kernel `http`'s. A caller that goes away
 * withdraws it (durable/sync-tracker.ts `withdraw`): workerd aborts the request's signal when
 * the client disconnects (compatibility flag `enable_request_signal`, wrangler.toml).
 */
async function synchronize(pager: HttpOperations, request: Request): Promise<Response> {
  const body = await readJsonObject(request);
  const caller = callerOf(request);
  const { seqno, result: completion } = admitObserved(pager, "synchronize", (seqno) => {
    if (body === null) {
      throw new ProtocolError(
        KERN_INVALID_ARGUMENT,
        "bad_json",
        "body must be a JSON object {offset, length, sync_flags}",
      );
    }
    const message = {
      type: "memory_object_synchronize" as const,
      id: seqno,
      ...parseRequest(SynchronizeBody, body),
    };
    // Wait before admitting: a clean range completes inside the admission itself.
    const completion = pager.waitForSync(seqno);
    try {
      const ctx = httpContext(pager, seqno, pager.pageSize() ?? DEFAULT_PAGE_SIZE);
      handleSynchronize({ ...ctx, caller }, message);
    } catch (error) {
      pager.stopWaitingForSync(seqno);
      throw error;
    }
    return completion;
  });
  const outcome = await unlessAborted(request.signal, completion, () => pager.withdrawSync(seqno));
  // Nobody reads this: the caller is gone.
  if (outcome === null) return new Response(null, { status: 499 });
  return Response.json({ type: "memory_object_synchronize_completed", ...outcome });
}

/**
 * Who asked, as the Worker named it in the grant header (worker/caller.ts): a hash of the token,
 * or the client's address when authentication is off. Only the Worker sets that header.
 */
function callerOf(request: Request): string {
  try {
    const { caller } = JSON.parse(request.headers.get(GRANT_HEADER) ?? "") as { caller?: unknown };
    if (typeof caller === "string" && caller.length > 0 && caller.length <= 128) return caller;
  } catch {
    // No grant header: not through the Worker.
  }
  return "anonymous";
}

/**
 * `promise`, or null once `signal` aborts first (then `onAbort` runs, once). A promise that
 * settles after that is ignored.
 */
function unlessAborted<T>(
  signal: AbortSignal,
  promise: Promise<T>,
  onAbort: () => void,
): Promise<T | null> {
  return new Promise((resolve, reject) => {
    const abort = () => {
      try {
        onAbort();
      } catch (error) {
        console.error("withdrawing an aborted request failed", error);
      }
      resolve(null);
    };
    if (signal.aborted) return abort();
    signal.addEventListener("abort", abort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", abort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", abort);
        reject(error);
      },
    );
  });
}

export async function destroy(pager: HttpOperations): Promise<DeleteResultBody> {
  pager.admit(() =>
    pager.tellEverySocket({ type: "memory_object_destroy", reason: "the object was deleted" }),
  );
  const segments = await pager.destroy();
  pager.closeEverySocket(CLOSE_NORMAL, "object deleted");
  await pager.deleteSegments(segments);
  return { object: pager.objectName(), deleted: true };
}

function httpContext(pager: HttpOperations, seqno: number, pageSize: number): HandlerContext {
  return {
    pager,
    kernel: HTTP_KERNEL,
    seqno,
    socket: null,
    // An HTTP body may carry more than one frame's max_transfer (docs/protocol.md §9).
    geometry: { ...pager.geometry(pageSize), maxTransfer: pager.limits.maxBodyBytes },
    // HTTP answers are built from the operation's result, not sent as messages.
    reply: (_message: ManagerMessage) => {},
    reserveReply: () => () => {},
  };
}

/**
 * The first write fixes the page size: `page_size` (checked by the definition), else 4096, and
 * with it the mode (`coherent`, else not coherent); later ones must agree (409).
 */
function fixPageSize(
  pager: HttpOperations,
  pageSize: number | undefined,
  coherent: boolean | undefined,
): number {
  const mode = pager.coherent();
  if (mode !== null && coherent !== undefined && coherent !== mode) {
    throw modeMismatch(coherent, mode);
  }
  if (mode === null) pager.setCoherent(coherent === true);
  const current = pager.pageSize();
  if (pageSize === undefined) {
    if (current === null) pager.setPageSize(DEFAULT_PAGE_SIZE);
    return current ?? DEFAULT_PAGE_SIZE;
  }
  if (current !== null && current !== pageSize) {
    throw pageSizeMismatch(pageSize, current);
  }
  if (current === null) pager.setPageSize(pageSize);
  return pageSize;
}

/** The body as a JSON object, or null; judged inside admit, so a bad body consumes its seqno. */
async function readJsonObject(request: Request): Promise<Record<string, unknown> | null> {
  return jsonObjectOf(await request.text().catch(() => ""));
}

function jsonObjectOf(text: string): Record<string, unknown> | null {
  try {
    const body: unknown = JSON.parse(text);
    return typeof body === "object" && body !== null && !Array.isArray(body)
      ? (body as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
