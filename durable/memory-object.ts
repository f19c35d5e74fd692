/**
 * The MemoryObject Durable Object: one per object name. A thin class (CONTRIBUTING.md §4) holding only
 * the platform's entry points; the `Pager` does the work.
 */
import { DurableObject } from "cloudflare:workers";
import { OBJECT_NAME_HEADER, parseObjectName } from "../schema";
import { handleHttp } from "./http-operations";
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
