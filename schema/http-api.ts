/**
 * The HTTP API of docs/protocol.md §9, defined once: each operation with its path, the right it
 * needs, its request (path, query, headers, body) and its answers, as zod schemas. From this the
 * Worker builds its routes and their checks (worker/serve-operation.ts), `GET /` its description,
 * `GET /openapi.json` the OpenAPI document, and `npm run docs:http` the README's table; the
 * object checks query strings and bodies with the same schemas (durable/http-operations.ts).
 *
 * Server-side only: it brings zod. The client takes its paths from schema/http-paths.ts.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { MAX_PAGE_SIZE, MIN_PAGE_SIZE } from "./constants";
import { isPageSize } from "./fields";
import { DIRECTORY_PATH, HTTP_PATHS } from "./http-paths";
import { readSyncFlags } from "./kernel-messages";
import { parseKernelId, parseObjectName } from "./names";
import { ProtocolError, invalidField, type ErrorBody } from "./protocol-error";
import type { Right } from "./token";

// ---- Checks -------------------------------------------------------------------------------------

/**
 * A zod check that runs one of the protocol's own parsers (schema/names.ts, schema/kernel-messages.ts),
 * so that the rule and its words stay there; the `ProtocolError` it throws rides in the issue.
 */
function ruledBy(parse: (value: unknown) => unknown) {
  return (value: unknown, ctx: z.RefinementCtx) => {
    try {
      parse(value);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      ctx.addIssue({ code: "custom", message: error.message, params: { error } });
    }
  };
}

/**
 * The error of the first problem zod found: the `ProtocolError` of a protocol parser, else
 * `bad_field` naming the field and its rule (docs/protocol.md §8).
 */
export function requestError(error: z.ZodError): ProtocolError {
  const issue = error.issues[0];
  const carried = (issue as { params?: { error?: unknown } } | undefined)?.params?.error;
  if (carried instanceof ProtocolError) return carried;
  const field = issue?.path.join(".") || "request";
  return invalidField(field, issue?.message ?? "is malformed");
}

/**
 * `input` checked against `schema`, or the `ProtocolError` of its first problem thrown.
 *
 * @example const { offset } = parseRequest(OPERATIONS.readPages.query, query);
 */
export function parseRequest<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw requestError(result.error);
  return result.data;
}

/** A query string as the definition checks it: the first value of each parameter. */
export function queryOf(url: URL): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) if (!Object.hasOwn(query, key)) query[key] = value;
  return query;
}

// ---- Fields -------------------------------------------------------------------------------------

const ObjectName = z
  .string()
  .superRefine(ruledBy(parseObjectName))
  .openapi({
    param: { name: "name", in: "path" },
    description: "the memory object: 1-128 characters of A-Z a-z 0-9 . _ -",
    pattern: "^[A-Za-z0-9._-]{1,128}$",
    example: "db",
  });

const ObjectParams = z.object({ name: ObjectName });

/** Required: a missing one is checked as "" so that it gets parseKernelId's "kernel is required". */
const KernelId = z
  .preprocess((value) => value ?? "", z.string().superRefine(ruledBy(parseKernelId)))
  .openapi({
    param: { name: "kernel", in: "query" },
    description: 'the kernel: 1-64 characters of A-Z a-z 0-9 . _ -, not "http"',
    pattern: "^[A-Za-z0-9._-]{1,64}$",
    example: "k1",
  });

const QUERY_COUNT_RULE = "must be given as a non-negative integer query parameter";

/** A byte count in a query string: decimal digits only, a safe integer. */
const QueryCount = z
  .string({ error: QUERY_COUNT_RULE })
  .regex(/^\d+$/, QUERY_COUNT_RULE)
  .refine((text) => Number.isSafeInteger(Number(text)), QUERY_COUNT_RULE)
  .transform(Number);

const PAGE_SIZE_RULE = `must be a power of two from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE}`;

const QueryPageSize = z
  .string()
  .regex(/^\d+$/, PAGE_SIZE_RULE)
  .refine((text) => isPageSize(Number(text)), PAGE_SIZE_RULE)
  .transform(Number)
  .optional();

const COHERENT_RULE = "must be 1 (coherent) or 0 (not)";

/** `?coherent=1|0` of a first write: the object's mode (docs/protocol.md §10). */
const QueryCoherent = z
  .enum(["0", "1"], { error: COHERENT_RULE })
  .transform((text) => text === "1")
  .optional();

const COUNT_RULE = "must be a non-negative safe integer";

/** A byte count in a JSON body (schema/fields.ts `readCount`). */
const Count = z.int({ error: COUNT_RULE }).min(0, COUNT_RULE);

const SyncFlags = z
  .int({ error: "must be a non-negative integer of VM_SYNC_* bits" })
  .superRefine(ruledBy((flags) => readSyncFlags({ sync_flags: flags })))
  .openapi({ description: "VM_SYNC_* bits (docs/protocol.md §6)" });

// ---- Answers ------------------------------------------------------------------------------------

const ObjectStatus = z
  .object({
    object: z.string(),
    page_size: z.int().nullable(),
    max_size: z.int(),
    pages: z.int(),
    bytes: z.int(),
    journal_pages: z.int(),
    size: z.int().openapi({ description: "the object's size in bytes (docs/protocol.md §13)" }),
    coherent: z.boolean().openapi({ description: "the object is coherent (docs/protocol.md §10)" }),
    seqno: z.int().openapi({ description: "the next seqno to be given" }),
    kernels: z.array(
      z.object({
        kernel: z.string(),
        connected: z.boolean(),
        last_id: z.int(),
        stale: z
          .boolean()
          .openapi({ description: "it flushes at its next init (docs/protocol.md §6.6)" }),
      }),
    ),
    syncs: z.int(),
  })
  .openapi("ObjectStatus");

const OutstandingSync = z
  .object({
    kernel: z.string(),
    id: z.int(),
    seqno: z.int(),
    offset: z.int(),
    length: z.int(),
    sync_flags: z.int(),
    since: z.string().openapi({ format: "date-time" }),
  })
  .openapi("OutstandingSync");

const SyncList = z.object({ syncs: z.array(OutstandingSync) });

const DirectoryEntry = z
  .object({
    object: z.string(),
    page_size: z.int(),
    coherent: z.boolean(),
    pages: z.int().openapi({ description: "pages stored, as of last_activity" }),
    bytes: z.int(),
    created: z.string().openapi({ format: "date-time" }),
    last_activity: z.string().openapi({
      format: "date-time",
      description: "the object's creation, or a flush of its writes (refreshed once a minute)",
    }),
  })
  .openapi("DirectoryEntry");

const ObjectList = z.object({
  objects: z.array(DirectoryEntry),
  cursor: z.string().nullable().openapi({ description: "for the next page; null at the end" }),
});

export type ObjectListBody = z.infer<typeof ObjectList>;

const PREFIX_RULE = "must be 0-128 characters of A-Z a-z 0-9 . _ -";
const LIMIT_RULE = "must be an integer from 1 to 1000";

const WriteResult = z.object({ offset: z.int(), length: z.int(), seqno: z.int() });

const SynchronizeCompleted = z.object({
  type: z.literal("memory_object_synchronize_completed"),
  offset: z.int(),
  length: z.int(),
  seqno: z.int(),
});

const PageMapCell = z.object({
  first: z.int(),
  end: z.int(),
  journal: z.int().openapi({ description: "pages in the journal, not yet in R2" }),
  r2: z.int().openapi({ description: "pages only in R2" }),
  segment: z.string().nullable().openapi({ description: "the segment holding most of them" }),
});

const PageMapBody = z
  .object({
    page_size: z.int(),
    end_page: z.int().openapi({ description: "one past the highest stored page" }),
    cells: z.array(PageMapCell),
    segments: z.array(z.object({ key: z.string(), pages: z.int(), live: z.int() })),
  })
  .openapi("PageMap");

const CELLS_RULE = "must be an integer from 1 to 4096";

const DeleteResult = z.object({ object: z.string(), deleted: z.literal(true) });

const SetSizeResult = z.object({ object: z.string(), size: z.int(), seqno: z.int() });

const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "bad_field" }),
      kern_return: z.int(),
      message: z.string(),
    }),
  })
  .openapi("Error");

export const ApiDescription = z.object({
  service: z.string(),
  description: z.string(),
  protocol: z.int(),
  routes: z.record(z.string(), z.string()),
});

export type ObjectStatusBody = z.infer<typeof ObjectStatus>;
/**
 * What an operation called by RPC answers (durable/http-operations.ts `answerCall`): its value,
 * or its error's body, which the Worker turns back into the same `ProtocolError`.
 */
export type HttpOutcome<T> = { value: T } | { error: ErrorBody };
export type OutstandingSyncBody = z.infer<typeof OutstandingSync>;
export type WriteResultBody = z.infer<typeof WriteResult>;
export type SynchronizeCompletedBody = z.infer<typeof SynchronizeCompleted>;
export type DeleteResultBody = z.infer<typeof DeleteResult>;
export type SetSizeResultBody = z.infer<typeof SetSizeResult>;

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** The errors any object operation may answer (docs/protocol.md §9); 400 names field and rule. */
const ERRORS = {
  400: json(ErrorBody, "bad input: the message names the field and its rule"),
  401: json(ErrorBody, "missing or bad token"),
  403: json(ErrorBody, "the token does not grant this, or the origin is not allowed"),
  500: json(ErrorBody, "storage failed, or an internal error"),
  503: json(ErrorBody, "journal full, or authentication required but not configured"),
};

// ---- Operations ---------------------------------------------------------------------------------

/**
 * One operation: its route (OpenAPI's, via zod), the right its token needs, and which parts of
 * the request the Worker checks. The rest (query strings and bodies of object operations) the
 * object checks in seqno order, so that a bad request consumes its seqno like a bad frame
 * (docs/protocol.md §8, docs/protocol.md §9).
 */
interface Operation<R> {
  route: R;
  right: Right | null;
  checkedByWorker: readonly ("params" | "query" | "headers")[];
}

function operation<const R extends Parameters<typeof createRoute>[0]>(
  right: Right | null,
  checkedByWorker: Operation<R>["checkedByWorker"],
  route: R,
) {
  return { right, checkedByWorker, route: createRoute(route) };
}

const octets = z.string().openapi({ format: "binary" });

export const OPERATIONS = {
  describe: operation(null, [], {
    operationId: "describe",
    method: "get",
    path: "/",
    summary: "this API: its routes",
    description: "a JSON description of the API",
    responses: { 200: json(ApiDescription, "the service and its routes") },
  }),
  openapi: operation(null, [], {
    operationId: "openapi",
    method: "get",
    path: "/openapi.json",
    summary: "this API as an OpenAPI 3.1 document",
    description: "this API as an OpenAPI 3.1 document",
    responses: {
      200: json(z.record(z.string(), z.unknown()), "the OpenAPI document"),
    },
  }),
  listObjects: operation("read", ["query"], {
    operationId: "listObjects",
    method: "get",
    path: DIRECTORY_PATH,
    summary: "list objects by name, a page at a time",
    description:
      "the objects whose names start with `prefix` and the token covers, by name, `limit` at a time",
    request: {
      query: z.object({
        prefix: z
          .string()
          .regex(/^[A-Za-z0-9._-]{0,128}$/, PREFIX_RULE)
          .optional()
          .openapi({ description: "names starting with this", example: "tenant-a." }),
        cursor: z
          .string()
          .max(1024, "must be the cursor of the previous page")
          .optional()
          .openapi({ description: "the previous page's cursor" }),
        limit: z
          .string()
          .regex(/^\d{1,4}$/, LIMIT_RULE)
          .transform(Number)
          .refine((n) => n >= 1 && n <= 1000, LIMIT_RULE)
          .optional()
          .openapi({ description: "at most this many (default 100)", example: "100" }),
      }),
    },
    responses: { 200: json(ObjectList, "a page of the directory"), ...ERRORS },
  }),
  stat: operation("read", ["params"], {
    operationId: "stat",
    method: "get",
    path: HTTP_PATHS.object,
    summary: "object status",
    description:
      "status: page size, pages, bytes, journal pages, next seqno, kernels, outstanding syncs",
    request: { params: ObjectParams },
    responses: { 200: json(ObjectStatus, "the object's status"), ...ERRORS },
  }),
  readPages: operation("read", ["params"], {
    operationId: "readPages",
    method: "get",
    path: HTTP_PATHS.pages,
    summary: "read bytes (never-written pages are zeros)",
    description: "the bytes of any range (≤ 64 MiB); never-written pages read as zeros",
    request: {
      params: ObjectParams,
      query: z.object({
        offset: QueryCount.openapi({ description: "first byte", example: "0" }),
        length: QueryCount.openapi({ description: "bytes, at most 64 MiB", example: "4096" }),
      }),
    },
    responses: {
      200: {
        description: "the bytes, streamed",
        content: { "application/octet-stream": { schema: octets } },
      },
      ...ERRORS,
      422: json(ErrorBody, "too_fragmented: read a smaller range"),
    },
  }),
  writePages: operation("write", ["params"], {
    operationId: "writePages",
    method: "put",
    path: HTTP_PATHS.pages,
    summary: "write page-aligned bytes",
    description: "page-aligned bytes (≤ 64 MiB), a dirty `data_return` of kernel `http`",
    request: {
      params: ObjectParams,
      query: z.object({
        offset: QueryCount.openapi({ description: "a multiple of the page size", example: "0" }),
        page_size: QueryPageSize.openapi({ description: "fixed by the first write; default 4096" }),
        coherent: QueryCoherent.openapi({
          description: "1: a coherent object (docs/protocol.md §10); fixed with the page size",
        }),
      }),
      body: {
        required: true,
        content: { "application/octet-stream": { schema: octets } },
      },
    },
    responses: {
      200: json(WriteResult, "journaled"),
      ...ERRORS,
      409: json(ErrorBody, "page_size differs from the object's"),
      413: json(ErrorBody, "body over MAX_BODY_BYTES"),
      507: json(ErrorBody, "the object's database is full"),
    },
  }),
  synchronize: operation("write", ["params"], {
    operationId: "synchronize",
    method: "post",
    path: HTTP_PATHS.synchronize,
    summary: "body {offset, length, sync_flags}; answers on completion",
    description: "`{offset, length, sync_flags}`; answers once the completion is due",
    request: {
      params: ObjectParams,
      body: {
        required: true,
        content: {
          "application/json": {
            schema: z.object({ offset: Count, length: Count, sync_flags: SyncFlags }),
          },
        },
      },
    },
    responses: {
      200: json(SynchronizeCompleted, "the completion, when it is due"),
      ...ERRORS,
      409: json(ErrorBody, "object_deleted while it waited"),
      413: json(ErrorBody, "body over 64 KiB"),
      429: json(ErrorBody, "too_many_syncs for this caller"),
    },
  }),
  setSize: operation("write", ["params"], {
    operationId: "setSize",
    method: "patch",
    path: HTTP_PATHS.object,
    summary: "body {size}: set the object's size",
    description:
      "`{size}`: sets the object's size in bytes (docs/protocol.md §13); a shrink drops the pages past it",
    request: {
      params: ObjectParams,
      query: z.object({
        page_size: QueryPageSize.openapi({ description: "fixed by the first write; default 4096" }),
        coherent: QueryCoherent.openapi({
          description: "1: a coherent object (docs/protocol.md §10); fixed with the page size",
        }),
      }),
      body: {
        required: true,
        content: { "application/json": { schema: z.object({ size: Count }) } },
      },
    },
    responses: {
      200: json(SetSizeResult, "durably recorded"),
      ...ERRORS,
      409: json(ErrorBody, "page_size differs from the object's"),
      413: json(ErrorBody, "body over 64 KiB"),
    },
  }),
  listSyncs: operation("read", ["params"], {
    operationId: "listSyncs",
    method: "get",
    path: HTTP_PATHS.syncs,
    summary: "outstanding synchronize requests",
    description: "outstanding synchronize requests",
    request: { params: ObjectParams },
    responses: { 200: json(SyncList, "the outstanding requests"), ...ERRORS },
  }),
  events: operation("read", ["params"], {
    operationId: "events",
    method: "get",
    path: HTTP_PATHS.events,
    summary: "server-sent events: what happens to the object, in seqno order",
    description: "server-sent events: what happens to the object, in seqno order",
    request: { params: ObjectParams },
    responses: {
      200: {
        description: "the stream, starting with `hello` and the status",
        content: { "text/event-stream": { schema: z.string() } },
      },
      ...ERRORS,
      429: json(ErrorBody, "too_many_observers"),
    },
  }),
  pageMap: operation("read", ["params"], {
    operationId: "pageMap",
    method: "get",
    path: HTTP_PATHS.map,
    summary: "where the pages are, in at most `cells` runs",
    description: "where the pages are (journal, R2 by segment), in at most `cells` runs",
    request: {
      params: ObjectParams,
      query: z.object({
        cells: z
          .string()
          .regex(/^\d{1,4}$/, CELLS_RULE)
          .transform(Number)
          .refine((n) => n >= 1 && n <= 4096, CELLS_RULE)
          .optional()
          .openapi({ description: "at most this many runs (default 256)", example: "256" }),
      }),
    },
    responses: { 200: json(PageMapBody, "the map"), ...ERRORS },
  }),
  destroy: operation("admin", ["params"], {
    operationId: "destroy",
    method: "delete",
    path: HTTP_PATHS.object,
    summary: "destroy the object and its pages",
    description: "destroys the object and its pages; the name starts afresh",
    request: { params: ObjectParams },
    responses: { 200: json(DeleteResult, "deleted"), ...ERRORS },
  }),
  control: operation("read", ["query", "params", "headers"], {
    operationId: "control",
    method: "get",
    path: HTTP_PATHS.control,
    summary: "WebSocket control channel of one kernel",
    description: "the WebSocket control channel of one kernel",
    request: {
      params: ObjectParams,
      query: z.object({ kernel: KernelId }),
      headers: z.object({
        upgrade: z.literal("websocket").openapi({ description: "Upgrade: websocket" }),
      }),
    },
    responses: {
      101: { description: "switched to the control socket (docs/protocol.md §2)" },
      ...ERRORS,
      426: json(ErrorBody, "not a WebSocket upgrade"),
      429: json(ErrorBody, "too_many_errors: this kernel or token is cut off for the minute"),
    },
  }),
};

/** Bodies the object checks with the definition (the Worker passes them through unread). */
export const SynchronizeBody =
  OPERATIONS.synchronize.route.request.body.content["application/json"].schema;
export const ReadPagesQuery = OPERATIONS.readPages.route.request.query;
export const WritePagesQuery = OPERATIONS.writePages.route.request.query;
export const SetSizeBody = OPERATIONS.setSize.route.request.body.content["application/json"].schema;
export const SetSizeQuery = OPERATIONS.setSize.route.request.query;
export const ListObjectsQuery = OPERATIONS.listObjects.route.request.query;
export const PageMapQuery = OPERATIONS.pageMap.route.request.query;

export type OperationId = keyof typeof OPERATIONS;

// ---- Derived views ------------------------------------------------------------------------------

/**
 * An operation as a line of text: method, path and its query parameters, `[&x=]` when optional.
 *
 * @example spelled(OPERATIONS.writePages.route) // "PUT /v1/objects/{name}/pages?offset=[&page_size=]"
 */
export function spelled(route: { method: string; path: string; request?: object }): string {
  const query = (route.request as { query?: z.ZodObject } | undefined)?.query;
  let text = `${route.method.toUpperCase()} ${route.path}`;
  let first = true;
  for (const [name, schema] of Object.entries(query?.shape ?? {})) {
    const optional = (schema as z.ZodType).safeParse(undefined).success;
    const part = `${first ? "?" : "&"}${name}=`;
    text += optional ? `[${part}]` : part;
    first = false;
  }
  return text;
}

/** The body of `GET /`. */
export function describeApi(): z.infer<typeof ApiDescription> {
  return {
    service: "edgepager",
    description: "A Mach-style external memory manager: memory objects backed by R2.",
    protocol: 1,
    routes: Object.fromEntries(
      Object.values(OPERATIONS).map(({ route }) => [spelled(route), route.summary]),
    ),
  };
}

/** The OpenAPI 3.1 document of every operation. */
export function openApiDocument() {
  const registry = new OpenAPIHono();
  for (const { route } of Object.values(OPERATIONS)) registry.openAPIRegistry.registerPath(route);
  registry.openAPIRegistry.registerComponent("securitySchemes", "token", {
    type: "http",
    scheme: "bearer",
    description: "a capability token (docs/security.md); off in local development",
  });
  return registry.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "edgepager",
      version: "1",
      description:
        "A Mach-style external memory manager: memory objects backed by R2 (docs/protocol.md §9).",
    },
    security: [{ token: [] }],
  });
}

/** The README's table of the API (docs/protocol.md §9), one row per operation. */
export function httpTable(): string {
  const rows = Object.values(OPERATIONS).map(({ route, right }) => {
    const cells = [`\`${spelled(route)}\``, right ?? "", route.description];
    return `| ${cells.join(" | ")} |`;
  });
  const head =
    "| `HEAD` of each `GET` above but `control` | | the GET's status and headers, no body (a HEAD of pages reads none) |";
  return ["| method and path | right | does |", "| --- | --- | --- |", ...rows, head].join("\n");
}
