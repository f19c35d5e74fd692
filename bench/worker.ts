/**
 * The bench-only Worker (bench/wrangler.toml, never deployed): the least work that does what
 * edgepager does, so `npm run bench` can report each figure as a ratio to a baseline measured in
 * the same run, on the same runtime.
 *
 * - (a) `PUT /bench/r2-put`: one R2 put of the request body, streamed. The floor for bulk writes.
 * - (b) `/bench/page-socket`: a WebSocket to a Durable Object that decodes each binary frame with
 *   edgepager's codec, puts its payload to R2 under a fresh key, and replies `{"id"}`. The floor
 *   for "one dirty page made durable".
 * - (c) `/bench/echo-socket`: a WebSocket to a Durable Object that sends each message back. The
 *   floor for messages per second on one object.
 *
 * Sockets are accepted with `ctx.acceptWebSocket`, as edgepager's are, and the class is
 * SQLite-backed like MemoryObject, though it stores nothing there.
 */
import { DurableObject } from "cloudflare:workers";
import { decodeFrame } from "../schema";

interface BenchEnv {
  BENCH_OBJECT: DurableObjectNamespace<BenchObject>;
  BENCH_PAGES: R2Bucket;
}

export default {
  async fetch(request: Request, env: BenchEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/bench/r2-put" && request.method === "PUT") {
      // The body streams into R2 when its length is known, as a client's PUT has it.
      const body = request.headers.has("content-length")
        ? request.body
        : await request.arrayBuffer();
      const object = await env.BENCH_PAGES.put(`bench/bulk/${crypto.randomUUID()}`, body);
      return Response.json({ size: object?.size ?? 0 });
    }
    if (url.pathname === "/bench/page-socket" || url.pathname === "/bench/echo-socket") {
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("expected a WebSocket upgrade", { status: 426 });
      }
      const name = url.searchParams.get("object") ?? "bench";
      return env.BENCH_OBJECT.getByName(name).fetch(request);
    }
    return new Response("not found", { status: 404 });
  },
} satisfies ExportedHandler<BenchEnv>;

export class BenchObject extends DurableObject<BenchEnv> {
  override async fetch(request: Request): Promise<Response> {
    const mode = new URL(request.url).pathname === "/bench/echo-socket" ? "echo" : "page";
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1], [mode]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (this.ctx.getTags(ws).includes("echo")) {
      ws.send(message);
      return;
    }
    const frame = decodeFrame(message);
    if (!frame.payload) throw new Error("page-socket expects binary frames with a payload");
    await this.env.BENCH_PAGES.put(`bench/pages/${crypto.randomUUID()}`, frame.payload);
    ws.send(JSON.stringify({ id: frame.header.id }));
  }
}
