/**
 * `serve(app, operation, handler)`: one route of the API definition (schema/http-api.ts) on the
 * Worker, with the right its token needs and the checks of the parts the Worker judges (the path's
 * name; the control socket's kernel). Query strings and bodies of object operations are left to
 * the object, which judges them in seqno order (docs/protocol.md §8).
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Handler, MiddlewareHandler } from "hono";
import type { OPERATIONS } from "../schema/http-api";
import type { AppEnv } from "./app-env";
import { requireRight } from "./require-right";

type Operation = (typeof OPERATIONS)[keyof typeof OPERATIONS];

export function serve(
  app: OpenAPIHono<AppEnv>,
  { route, right, checkedByWorker }: Operation,
  handler: Handler<AppEnv>,
  /** Middleware before the right's check, and after it (body limits). */
  { before = [], after = [] }: { before?: MiddlewareHandler[]; after?: MiddlewareHandler[] } = {},
): void {
  const parts = (route as { request?: Record<string, unknown> }).request ?? {};
  const request = Object.fromEntries(
    checkedByWorker.filter((part) => parts[part] !== undefined).map((part) => [part, parts[part]]),
  );
  const middleware = [...before, ...(right ? [requireRight(right)] : []), ...after];
  // `hide`: the OpenAPI document is built from the whole definition, not from these routes.
  app.openapi({ ...route, request, middleware, hide: true } as never, handler as never);
}
