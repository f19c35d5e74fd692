/**
 * The edgepager Worker: a thin Hono app (CONTRIBUTING.md §6) that checks tokens, names, sizes and
 * routes, then forwards each request to the memory object's Durable Object. It holds no object
 * state.
 */
import { Hono } from "hono";
import { allowOrigins } from "./allow-origins";
import type { AppEnv } from "./app-env";
import { notFound, onError } from "./error-boundary";
import { failClosed } from "./fail-closed";
import { forwardToObject } from "./forward-to-object";
import { limitBody, limitStreamedBody } from "./limit-body";
import { requireRight } from "./require-right";
import { requireToken } from "./require-token";
import { requireUpgrade } from "./require-upgrade";

export { MemoryObject } from "../durable/memory-object";

const API = {
  service: "edgepager",
  description: "A Mach-style external memory manager: memory objects backed by R2.",
  protocol: 1,
  routes: {
    "GET /v1/objects/{name}": "object status",
    "GET /v1/objects/{name}/pages?offset=&length=": "read bytes (never-written pages are zeros)",
    "PUT /v1/objects/{name}/pages?offset=[&page_size=]": "write page-aligned bytes",
    "POST /v1/objects/{name}/synchronize":
      "body {offset, length, sync_flags}; answers on completion",
    "GET /v1/objects/{name}/syncs": "outstanding synchronize requests",
    "DELETE /v1/objects/{name}": "destroy the object and its pages",
    "GET /v1/objects/{name}/control?kernel={id}": "WebSocket control channel of one kernel",
  },
};

const app = new Hono<AppEnv>();
const object = "/v1/objects/:name";

// First, so that every answer to an allowed web origin, errors included, carries CORS headers.
app.use(allowOrigins());
app.use(failClosed());
app.get("/", (c) => c.json(API));
app.use(`${object}/*`, requireToken());
app.use(object, requireToken());
app.get(`${object}/control`, requireUpgrade(), requireRight("read"), forwardToObject());
app.get(object, requireRight("read"), forwardToObject());
app.delete(object, requireRight("admin"), forwardToObject());
app.get(`${object}/pages`, requireRight("read"), forwardToObject());
app.put(
  `${object}/pages`,
  requireRight("write"),
  (c, next) => limitStreamedBody({ maxBytes: Number(c.env.MAX_BODY_BYTES) })(c, next),
  forwardToObject(),
);
app.post(
  `${object}/synchronize`,
  requireRight("write"),
  limitBody({ maxBytes: 64 * 1024 }),
  forwardToObject(),
);
app.get(`${object}/syncs`, requireRight("read"), forwardToObject());
app.notFound(notFound);
app.onError(onError);

export default app;
