/**
 * The edgepager Worker: a thin Hono app (CONTRIBUTING.md §6) that checks origins, tokens, rights,
 * names and sizes, then hands each request to the memory object's Durable Object. It holds no
 * object state. Every route comes from the one definition of the API (schema/http-api.ts): its
 * path, its right, the parts the Worker checks; `GET /` and `GET /openapi.json` describe it.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { DIRECTORY_PATH, HTTP_PATHS } from "../schema";
import {
  ListObjectsQuery,
  OPERATIONS,
  parseRequest,
  describeApi,
  openApiDocument,
  queryOf,
  requestError,
} from "../schema/http-api";
import { allowOrigins } from "./allow-origins";
import type { AppEnv } from "./app-env";
import { callObject } from "./call-object";
import { notFound, onError } from "./error-boundary";
import { failClosed } from "./fail-closed";
import { forwardToObject } from "./forward-to-object";
import { limitBody, limitStreamedBody } from "./limit-body";
import { listObjects } from "./list-objects";
import { requireToken } from "./require-token";
import { requireUpgrade } from "./require-upgrade";
import { serve } from "./serve-operation";

export { MemoryObject } from "../durable/memory-object";

const app = new OpenAPIHono<AppEnv>({
  // What the definition refuses gets the ProtocolError naming the field and its rule.
  defaultHook: (result) => {
    if (!result.success) throw requestError(result.error);
  },
});

// First, so that every answer to an allowed web origin, errors included, carries CORS headers.
app.use(allowOrigins());
app.use(failClosed());
const objectPaths = HTTP_PATHS.object.replace("{name}", ":name");
app.use(DIRECTORY_PATH, requireToken());
app.use(objectPaths, requireToken());
app.use(`${objectPaths}/*`, requireToken());

serve(app, OPERATIONS.describe, (c) => c.json(describeApi()));
serve(app, OPERATIONS.openapi, (c) => c.json(openApiDocument()));
serve(app, OPERATIONS.listObjects, async (c) =>
  c.json(await listObjects(c, parseRequest(ListObjectsQuery, queryOf(new URL(c.req.url))))),
);
serve(app, OPERATIONS.stat, async (c) => c.json(await callObject(c, (o, call) => o.stat(call))));
serve(app, OPERATIONS.listSyncs, async (c) =>
  c.json(await callObject(c, (o, call) => o.listSyncs(call))),
);
serve(app, OPERATIONS.destroy, async (c) =>
  c.json(await callObject(c, (o, call) => o.destroy(call))),
);
serve(app, OPERATIONS.readPages, async (c) => {
  const query = queryOf(new URL(c.req.url));
  const head = c.req.method === "HEAD";
  const { length, body } = await callObject(c, (o, call) => o.readPages(call, query, head));
  return c.body(body as ReadableStream, 200, {
    "content-type": "application/octet-stream",
    "content-length": String(length),
  });
});
serve(
  app,
  OPERATIONS.writePages,
  async (c) => {
    const query = queryOf(new URL(c.req.url));
    // A declared length lets the object take only the memory a small body needs.
    const declared = c.req.header("transfer-encoding") ? null : c.req.header("content-length");
    const upload = { body: c.req.raw.body, declaredLength: declared ? Number(declared) : null };
    return c.json(await callObject(c, (o, call) => o.writePages(call, query, upload)));
  },
  {
    after: [(c, next) => limitStreamedBody({ maxBytes: Number(c.env.MAX_BODY_BYTES) })(c, next)],
  },
);
serve(
  app,
  OPERATIONS.setSize,
  async (c) => {
    const query = queryOf(new URL(c.req.url));
    // Passed on unread: the object judges it in seqno order, like a frame.
    const body = await c.req.text();
    return c.json(await callObject(c, (o, call) => o.setSize(call, query, body)));
  },
  { after: [limitBody({ maxBytes: 64 * 1024 })] },
);
serve(app, OPERATIONS.synchronize, forwardToObject("synchronize"), {
  after: [limitBody({ maxBytes: 64 * 1024 })],
});
serve(app, OPERATIONS.control, forwardToObject("control"), { before: [requireUpgrade()] });
serve(app, OPERATIONS.events, forwardToObject("events"));
serve(app, OPERATIONS.pageMap, async (c) => {
  const query = queryOf(new URL(c.req.url));
  return c.json(await callObject(c, (o, call) => o.pageMap(call, query)));
});
app.notFound(notFound);
app.onError(onError);

export default app;
