/**
 * The bench-only Worker (bench/wrangler.toml, never deployed): the least work that does what
 * edgepager does, so `npm run bench` can report each figure as a ratio to a baseline measured in
 * the same run, on the same runtime.
 *
 * - (a) `PUT /bench/r2-put`: one R2 put of the request body, streamed. The floor for bulk writes.
 *   It answers the key, which `GET /bench/r2-get?key=&offset=&length=` reads a range of: the
 *   floor for reading a database out of R2 (W9).
 * - (b) `/bench/page-socket`: a WebSocket to a Durable Object that decodes each binary frame with
 *   edgepager's codec, puts its payload to R2 under a fresh key, and replies `{"id"}`. The floor
 *   for "one dirty page made durable".
 * - (c) `/bench/echo-socket`: a WebSocket to a Durable Object that sends each message back. The
 *   floor for messages per second on one object.
 * - (d) `/bench/floor-socket`: the least any manager of docs/protocol.md must do per synchronize: parse
 *   it, record one SQLite row (its seqno must survive a restart), and send two replies (the ack,
 *   then the completion), each held by the output gate until the write is durable. Not a target,
 *   a reference: how much of the gap to (c) is the protocol's and how much is edgepager's.
 *
 * Sockets are accepted with `ctx.acceptWebSocket`, as edgepager's are, and the class is
 * SQLite-backed like MemoryObject; only (d) stores anything there.
 */
import { DurableObject } from "cloudflare:workers";
import { decodeFrame } from "../schema";

interface BenchEnv {
  BENCH_OBJECT: DurableObjectNamespace<BenchObject>;
  BENCH_PAGES: R2Bucket;
}

const SOCKET_MODES = ["page", "echo", "floor"] as const;

export default {
  async fetch(request: Request, env: BenchEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/bench/r2-put" && request.method === "PUT") {
      // The body streams into R2 when its length is known, as a client's PUT has it.
      const body = request.headers.has("content-length")
        ? request.body
        : await request.arrayBuffer();
      const key = `bench/bulk/${crypto.randomUUID()}`;
      const object = await env.BENCH_PAGES.put(key, body);
      return Response.json({ size: object?.size ?? 0, key });
    }
    if (url.pathname === "/bench/r2-get" && request.method === "GET") {
      const [key, offset, length] = ["key", "offset", "length"].map((k) => url.searchParams.get(k));
      const object = await env.BENCH_PAGES.get(key ?? "", {
        range: { offset: Number(offset), length: Number(length) },
      });
      if (!object) return new Response("no such key", { status: 404 });
      return new Response(object.body);
    }
    if (SOCKET_MODES.some((mode) => url.pathname === `/bench/${mode}-socket`)) {
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
    const path = new URL(request.url).pathname;
    const mode = SOCKET_MODES.find((m) => path === `/bench/${m}-socket`) ?? "page";
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1], [mode]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const [mode] = this.ctx.getTags(ws);
    if (mode === "echo") {
      ws.send(message);
      return;
    }
    if (mode === "floor") {
      const { id } = JSON.parse(String(message)) as { id: number };
      const seqno = this.nextSeqno();
      ws.send(JSON.stringify({ ack: id, seqno }));
      ws.send(JSON.stringify({ id, seqno }));
      return;
    }
    const frame = decodeFrame(message);
    if (!frame.payload) throw new Error("page-socket expects binary frames with a payload");
    await this.env.BENCH_PAGES.put(`bench/pages/${crypto.randomUUID()}`, frame.payload);
    ws.send(JSON.stringify({ id: frame.header.id }));
  }

  /** (d) One durable row per message, as a sequencer's seqno counter is. */
  private nextSeqno(): number {
    this.ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS counter (one INTEGER PRIMARY KEY, n)`);
    return this.ctx.storage.sql
      .exec<{ n: number }>(
        `INSERT INTO counter (one, n) VALUES (1, 0) ON CONFLICT (one) DO UPDATE SET n = n + 1
         RETURNING n`,
      )
      .one().n;
  }
}
