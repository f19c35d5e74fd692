/**
 * `callObject(c, method)`: a typed RPC call to the memory object's Durable Object, for every
 * operation but synchronize (durable/http-operations.ts `answerCall`); page bodies travel as
 * streams. An error comes back as its body and is thrown again here as the same `ProtocolError`,
 * for the error boundary.
 */
import type { Context } from "hono";
import { ProtocolError } from "../schema";
import type { HttpOutcome } from "../schema/http-api";
import type { MemoryObject } from "../durable/memory-object";
import type { ObjectCall } from "../durable/http-operations";
import type { AppEnv } from "./app-env";

export async function callObject<T>(
  c: Context<AppEnv>,
  method: (object: DurableObjectStub<MemoryObject>, call: ObjectCall) => Promise<HttpOutcome<T>>,
): Promise<T> {
  // Checked by the route (worker/serve-operation.ts).
  const name = c.req.param("name")!;
  const outcome = await method(c.env.MEMORY_OBJECT.getByName(name), { name });
  if ("error" in outcome) throw ProtocolError.fromJSON(outcome.error);
  return outcome.value;
}
