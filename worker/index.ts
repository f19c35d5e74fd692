/**
 * The edgepager Worker: a thin Hono app (style.md §6) that checks names, sizes and routes, then
 * forwards each request to the memory object's Durable Object. It holds no object state.
 */
import { Hono } from "hono";
import { notFound, onError } from "./error-boundary";
import { forwardToObject } from "./forward-to-object";
import { limitBody } from "./limit-body";
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

const app = new Hono<{ Bindings: Env }>();
const object = "/v1/objects/:name";

app.get("/", (c) => c.json(API));
app.get(`${object}/control`, requireUpgrade(), forwardToObject());
app.get(object, forwardToObject());
app.delete(object, forwardToObject());
app.get(`${object}/pages`, forwardToObject());
app.put(
  `${object}/pages`,
  (c, next) => limitBody({ maxBytes: Number(c.env.MAX_BODY_BYTES) })(c, next),
  forwardToObject(),
);
app.post(`${object}/synchronize`, limitBody({ maxBytes: 64 * 1024 }), forwardToObject());
app.get(`${object}/syncs`, forwardToObject());
app.notFound(notFound);
app.onError(onError);

export default app;
