/**
 * `forwardToObject()`: hands the raw request to the Durable Object of the `{name}` in the path,
 * with the name in a header (the object cannot read it from its id). WebSocket upgrades pass
 * through untouched, so the object accepts the socket itself and may hibernate (design.md §2).
 */
import type { Context } from "hono";
import { OBJECT_NAME_HEADER, parseObjectName } from "../schema";

export function forwardToObject() {
  return (c: Context<{ Bindings: Env }>) => {
    const name = parseObjectName(c.req.param("name"));
    const request = new Request(c.req.raw);
    request.headers.set(OBJECT_NAME_HEADER, name);
    return c.env.MEMORY_OBJECT.getByName(name).fetch(request);
  };
}
