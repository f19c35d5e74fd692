/**
 * The MemoryObject Durable Object: one per object name. A thin class (CONTRIBUTING.md §4) holding only
 * the platform's entry points; the `Pager` does the work. The HTTP operations (schema/http-api.ts
 * defines them) are typed RPC methods, page bodies streamed; `fetch` takes only what depends on
 * the caller's connection: the control socket's upgrade, and synchronize (withdrawn when its
 * caller goes away).
 */
import { DurableObject } from "cloudflare:workers";
import { OBJECT_NAME_HEADER, parseObjectName } from "../schema";
import type {
  DeleteResultBody,
  HttpOutcome,
  ObjectStatusBody,
  SetSizeResultBody,
  WriteResultBody,
} from "../schema/http-api";
import type { Upload } from "./incoming-body";
import {
  answerCall,
  destroy,
  handleHttp,
  listSyncs,
  pageMap,
  readPages,
  setSize,
  stat,
  writePages,
  type ObjectCall,
  type PagesAnswer,
} from "./http-operations";
import { Pager } from "./pager";
import { handleFrame } from "./socket-loop";
import { closeQuietly } from "./sockets";
import { handleUpgrade } from "./upgrade";

export class MemoryObject extends DurableObject<Env> {
  /** Exposed for tests that swap in a failing or slow R2 bucket. */
  readonly pager: Pager;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.pager = new Pager(ctx, env);
    void ctx.blockConcurrencyWhile(() => this.pager.start());
  }

  override async fetch(request: Request): Promise<Response> {
    this.pager.rememberName(parseObjectName(request.headers.get(OBJECT_NAME_HEADER)));
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      return handleUpgrade(this.pager, request);
    }
    return handleHttp(this.pager, request);
  }

  /** `GET /v1/objects/{name}`. */
  async stat(call: ObjectCall): Promise<HttpOutcome<ObjectStatusBody>> {
    return answerCall(this.pager, call, stat);
  }

  /** `GET /v1/objects/{name}/pages`: the bytes stream back over RPC; a HEAD reads none. */
  async readPages(
    call: ObjectCall,
    query: Record<string, string>,
    head: boolean,
  ): Promise<HttpOutcome<PagesAnswer>> {
    return answerCall(this.pager, call, (pager) => readPages(pager, query, head));
  }

  /** `PUT /v1/objects/{name}/pages`: the body streams in over RPC, counted as it comes. */
  async writePages(
    call: ObjectCall,
    query: Record<string, string>,
    upload: Upload,
  ): Promise<HttpOutcome<WriteResultBody>> {
    return answerCall(this.pager, call, (pager) => writePages(pager, query, upload));
  }

  /** `PATCH /v1/objects/{name}`: the body is `{size}`, judged in seqno order. */
  async setSize(
    call: ObjectCall,
    query: Record<string, string>,
    body: string,
  ): Promise<HttpOutcome<SetSizeResultBody>> {
    return answerCall(this.pager, call, (pager) => setSize(pager, query, body));
  }

  /** `GET /v1/objects/{name}/syncs`. */
  async listSyncs(call: ObjectCall): Promise<HttpOutcome<ReturnType<typeof listSyncs>>> {
    return answerCall(this.pager, call, listSyncs);
  }

  /** `GET /v1/objects/{name}/map`: where the pages are, for the dashboard. */
  async pageMap(
    call: ObjectCall,
    query: Record<string, string>,
  ): Promise<HttpOutcome<ReturnType<typeof pageMap>>> {
    return answerCall(this.pager, call, (pager) => pageMap(pager, query));
  }

  /** `DELETE /v1/objects/{name}`. */
  async destroy(call: ObjectCall): Promise<HttpOutcome<DeleteResultBody>> {
    return answerCall(this.pager, call, destroy);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    await handleFrame(this.pager, ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    // Answer the kernel's close frame so its side finishes the closing handshake.
    closeQuietly(ws, code === 1005 || code === 1006 ? 1000 : code, "closed");
    this.pager.disconnected(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.pager.disconnected(ws);
  }

  override async alarm(): Promise<void> {
    await this.pager.onAlarm();
  }
}
