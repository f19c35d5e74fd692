/**
 * `forwardToObject()`: hands the raw request to the Durable Object of the `{name}` in the path,
 * with the name and the verified grant in headers (the object cannot read its name from its id). WebSocket upgrades pass
 * through untouched, so the object accepts the socket itself and may hibernate (docs/architecture.md §2).
 */
import type { Context } from "hono";
import { GRANT_HEADER, OBJECT_NAME_HEADER, parseObjectName } from "../schema";
import type { AppEnv } from "./app-env";
import { callerOf } from "./caller";

export function forwardToObject() {
  return async (c: Context<AppEnv>) => {
    const name = parseObjectName(c.req.param("name"));
    const request = new Request(c.req.raw);
    request.headers.set(OBJECT_NAME_HEADER, name);
    // Overwrites whatever a client sent: only the Worker speaks for the token, and names the
    // caller whose budget an HTTP synchronize counts against.
    const { rights, exp } = c.get("grant");
    request.headers.set(GRANT_HEADER, JSON.stringify({ rights, exp, caller: await callerOf(c) }));
    return c.env.MEMORY_OBJECT.getByName(name).fetch(request);
  };
}
