/**
 * `forwardToObject(operation)`: hands the raw request to the Durable Object of the `{name}` in the
 * path, for what depends on the caller's connection: the control socket's upgrade, which passes
 * through untouched so the object accepts the socket itself and may hibernate
 * (docs/architecture.md §2), and synchronize, which is withdrawn when its caller goes away (the
 * request's signal; an RPC call has none). The other operations are typed RPC calls
 * (worker/call-object.ts). Headers carry the name (the object cannot read its name from its id),
 * the operation (so the object never parses the path) and the verified grant.
 */
import type { Context } from "hono";
import { GRANT_HEADER, OBJECT_NAME_HEADER, OPERATION_HEADER } from "../schema";
import type { OperationId } from "../schema/http-api";
import type { AppEnv } from "./app-env";
import { callerOf } from "./caller";

export function forwardToObject(operation: OperationId) {
  return async (c: Context<AppEnv>) => {
    // Checked by the route (worker/serve-operation.ts).
    const name = c.req.param("name")!;
    const request = new Request(c.req.raw);
    request.headers.set(OBJECT_NAME_HEADER, name);
    request.headers.set(OPERATION_HEADER, operation);
    // Overwrites whatever a client sent: only the Worker speaks for the token, and names the
    // caller whose budget an HTTP synchronize counts against.
    const { rights, exp } = c.get("grant");
    request.headers.set(GRANT_HEADER, JSON.stringify({ rights, exp, caller: await callerOf(c) }));
    return c.env.MEMORY_OBJECT.getByName(name).fetch(request);
  };
}
