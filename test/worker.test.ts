/**
 * The HTTP surface of docs/protocol.md §9 through the real Worker (`exports.default.fetch`): the API
 * description, JSON errors with fitting statuses, the object operations and DELETE.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  KERN_ABORTED,
  KERN_INVALID_ADDRESS,
  KERN_INVALID_ARGUMENT,
  VM_SYNC_SYNCHRONOUS,
} from "../schema";
import { OPERATIONS, describeApi, openApiDocument } from "../schema/http-api";
import { wrapObjectBucket } from "./helpers/buckets";
import { call, putPages, readPages, stat, synchronize } from "./helpers/http";
import { TestKernel, pageOf } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

const MAX_BODY_BYTES = Number(env.MAX_BODY_BYTES);

/** Checks the JSON error body of docs/protocol.md §9 and returns it. */
async function expectError(
  response: Response,
  status: number,
  code: string,
  message: RegExp,
  kernReturn: number = KERN_INVALID_ARGUMENT,
) {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/application\/json/);
  const body = JSON.parse(text);
  expect(body).toEqual({
    error: { code, kern_return: kernReturn, message: expect.stringMatching(message) },
  });
  return body.error;
}

describe("the API description", () => {
  it("GET / describes the service and its routes", async () => {
    const response = await call("/");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/application\/json/);
    const body = await response.json<{ description: unknown; routes: Record<string, string> }>();
    expect(body).toMatchObject({ service: "edgepager", protocol: 1 });
    expect(typeof body.description).toBe("string");
    expect(Object.keys(body.routes)).toEqual(
      expect.arrayContaining([
        "GET /v1/objects/{name}",
        "GET /v1/objects/{name}/pages?offset=&length=",
        "PUT /v1/objects/{name}/pages?offset=[&page_size=][&coherent=]",
        "PATCH /v1/objects/{name}[?page_size=][&coherent=]",
        "POST /v1/objects/{name}/synchronize",
        "GET /v1/objects/{name}/syncs",
        "DELETE /v1/objects/{name}",
        "GET /v1/objects/{name}/control?kernel=",
      ]),
    );
  });
});

describe("the OpenAPI document", () => {
  it("GET /openapi.json serves the document of the API's one definition", async () => {
    const response = await call("/openapi.json");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/application\/json/);
    const document = await response.json<{ openapi: string; paths: Record<string, unknown> }>();
    // test/node/http-api.test.ts validates it.
    expect(document).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
    expect(document.openapi).toBe("3.1.0");
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(["/v1/objects/{name}", "/v1/objects/{name}/pages"]),
    );
  });

  it("GET / lists exactly the operations of the definition", async () => {
    const body = await (await call("/")).json<{ routes: Record<string, string> }>();
    expect(body).toEqual(describeApi());
    expect(Object.keys(body.routes)).toHaveLength(Object.keys(OPERATIONS).length);
  });
});

describe("routing and names", () => {
  it("an unknown route gets 404 JSON", async () => {
    await expectError(await call("/v2/nothing"), 404, "not_found", /GET \/v2\/nothing/);
    await expectError(
      await call("/v1/objects/w-404/other"),
      404,
      "not_found",
      /\/v1\/objects\/w-404\/other/,
    );
    await expectError(
      await call("/v1/objects/w-404/pages", { method: "POST" }),
      404,
      "not_found",
      /POST/,
    );
  });

  it("an object name of 129 characters gets 400 naming the rule", async () => {
    await expectError(
      await call(`/v1/objects/${"n".repeat(129)}`),
      400,
      "bad_name",
      /object name must be 1-128 characters of A-Z a-z 0-9 \. _ -/,
    );
    // 128 is fine.
    expect((await call(`/v1/objects/${"n".repeat(128)}`)).status).toBe(200);
  });

  it("an object name with a url-encoded '!' gets 400", async () => {
    await expectError(
      await call("/v1/objects/bad%21name/pages?offset=0&length=1"),
      400,
      "bad_name",
      /object name must be 1-128 characters/,
    );
    await expectError(
      await putPages("bad%21name", 0, pageOf(1)),
      400,
      "bad_name",
      /object name must be/,
    );
  });

  it("the control route without Upgrade gets 426", async () => {
    await expectError(
      await call("/v1/objects/w-control/control?kernel=k1"),
      426,
      "upgrade_required",
      /Upgrade: websocket/,
    );
  });

  it("a bad kernel id gets 400", async () => {
    const upgrade = { headers: { Upgrade: "websocket" } };
    for (const query of ["", "?kernel=", "?kernel=k%211", `?kernel=${"k".repeat(65)}`]) {
      await expectError(
        await call(`/v1/objects/w-kernel/control${query}`, upgrade),
        400,
        "bad_name",
        /kernel (is required|must be 1-64 characters)/,
      );
    }
  });

  it('kernel id "http" is reserved: 400', async () => {
    await expectError(
      await call("/v1/objects/w-kernel-http/control?kernel=http", {
        headers: { Upgrade: "websocket" },
      }),
      400,
      "bad_name",
      /kernel "http" is reserved/,
    );
  });
});

describe("PUT and GET pages", () => {
  it("a body over MAX_BODY_BYTES gets 413 from the Worker, before the object", async () => {
    const object = "w-put-413";
    const response = await putPages(object, 0, new Uint8Array(MAX_BODY_BYTES + 4096));
    await expectError(response, 413, "too_large", new RegExp(`must not exceed ${MAX_BODY_BYTES}`));
    // Never reached the object: it consumed no seqno and has no page size.
    expect(await stat(object)).toMatchObject({ seqno: 1, page_size: null, pages: 0 });
  });

  it("a chunked body over MAX_BODY_BYTES gets 413 too", async () => {
    const chunk = new Uint8Array(1 << 20);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > MAX_BODY_BYTES) return controller.close();
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    const response = await call("/v1/objects/w-put-413-chunked/pages?offset=0", {
      method: "PUT",
      body,
      // @ts-expect-error: a streaming request body needs duplex in the fetch spec
      duplex: "half",
    });
    await expectError(response, 413, "too_large", /must not exceed/);
  });

  it("a PUT whose page_size differs from the object's gets 409", async () => {
    const object = "w-put-409";
    expect((await putPages(object, 0, new Uint8Array(8192), "&page_size=8192")).status).toBe(200);
    await expectError(
      await putPages(object, 8192, pageOf(1), "&page_size=4096"),
      409,
      "page_size_mismatch",
      /page_size \(4096\) differs from the object's page size \(8192\)/,
    );
    expect(await stat(object)).toMatchObject({ page_size: 8192, pages: 1 });
  });

  it("a PUT with a page_size that is not a power of two gets 400", async () => {
    await expectError(
      await putPages("w-put-bad-ps", 0, new Uint8Array(3000), "&page_size=1000"),
      400,
      "bad_field",
      /page_size must be a power of two/,
    );
  });

  it("a PUT at an unaligned offset gets 400", async () => {
    const object = "w-put-unaligned";
    await expectError(
      await putPages(object, 100, pageOf(1)),
      400,
      "bad_field",
      /^offset must be a multiple of page_size \(4096\)/,
    );
    await expectError(
      await putPages(object, 0, new Uint8Array(100)),
      400,
      "bad_field",
      /^length must be a positive multiple of page_size/,
    );
    await expectError(
      await call(`/v1/objects/${object}/pages?offset=-1`, { method: "PUT", body: pageOf(1) }),
      400,
      "bad_field",
      /^offset must be given as a non-negative integer/,
    );
    expect(await stat(object)).toMatchObject({ pages: 0, journal_pages: 0, seqno: 4 });
  });

  it("a PUT beyond max_size gets 400 with KERN_INVALID_ADDRESS", async () => {
    await expectError(
      await putPages("w-put-beyond", 2 ** 40, pageOf(1)),
      400,
      "out_of_range",
      /exceeds max_size/,
      KERN_INVALID_ADDRESS,
    );
  });

  it("a GET of pages longer than the limit gets 400", async () => {
    const object = "w-get-long";
    await expectError(
      await call(`/v1/objects/${object}/pages?offset=0&length=${MAX_BODY_BYTES + 1}`),
      400,
      "bad_field",
      new RegExp(`^length must not exceed ${MAX_BODY_BYTES} bytes`),
    );
    await expectError(
      await call(`/v1/objects/${object}/pages?offset=0`),
      400,
      "bad_field",
      /^length must be given/,
    );
    await expectError(
      await call(`/v1/objects/${object}/pages?offset=${2 ** 40}&length=1`),
      400,
      "out_of_range",
      /exceeds max_size/,
      KERN_INVALID_ADDRESS,
    );
  });
});

describe("POST synchronize", () => {
  it("a body that is not JSON gets 400", async () => {
    const object = "w-sync-json";
    await expectError(
      await call(`/v1/objects/${object}/synchronize`, { method: "POST", body: "{offset" }),
      400,
      "bad_json",
      /body must be a JSON object \{offset, length, sync_flags\}/,
    );
    await expectError(
      await call(`/v1/objects/${object}/synchronize`, { method: "POST", body: "[]" }),
      400,
      "bad_json",
      /JSON object/,
    );
    // Each consumed a seqno (docs/protocol.md §9).
    expect((await stat(object)).seqno).toBe(3);
  });

  it("sync_flags 3 gets 400 with KERN_INVALID_ARGUMENT", async () => {
    const error = await expectError(
      await synchronize("w-sync-flags", 0, 4096, 3),
      400,
      "bad_field",
      /^sync_flags must not set both/,
    );
    expect(error.kern_return).toBe(KERN_INVALID_ARGUMENT);
    expect(await stat("w-sync-flags")).toMatchObject({ syncs: 0 });
  });

  it("a missing field gets 400 naming it", async () => {
    await expectError(
      await call("/v1/objects/w-sync-missing/synchronize", {
        method: "POST",
        body: JSON.stringify({ offset: 0, sync_flags: 2 }),
      }),
      400,
      "bad_field",
      /^length /,
    );
  });
});

describe("GET syncs", () => {
  it("lists outstanding synchronize requests", async () => {
    const object = "w-syncs";
    expect(await (await call(`/v1/objects/${object}/syncs`)).json()).toEqual({ syncs: [] });
    const { kernel } = await TestKernel.open(object, "k1");
    const control = await wrapObjectBucket(object, { delayMs: 1500 });
    const returned = kernel.dataReturn(0, pageOf(4));
    await kernel.ack(returned);
    const sync = kernel.synchronize(100, 5000, VM_SYNC_SYNCHRONOUS);
    const ack = await kernel.ack(sync);
    const response = await call(`/v1/objects/${object}/syncs`);
    expect(response.status).toBe(200);
    const body = await response.json<{ syncs: Record<string, unknown>[] }>();
    expect(body).toEqual({
      syncs: [
        {
          kernel: "k1",
          id: sync,
          seqno: ack.seqno,
          offset: 100,
          length: 5000,
          sync_flags: VM_SYNC_SYNCHRONOUS,
          since: expect.any(String),
        },
      ],
    });
    expect(Number.isNaN(Date.parse(body.syncs[0]!.since as string))).toBe(false);
    expect((await stat(object)).syncs).toBe(1);
    await kernel.completion(sync);
    expect(control.written).toHaveLength(1);
    expect(await (await call(`/v1/objects/${object}/syncs`)).json()).toEqual({ syncs: [] });
    kernel.close();
  });
});

describe("HEAD", () => {
  it("answers like GET without a body on every GET route: same status, same headers", async () => {
    const object = "w-head";
    expect((await putPages(object, 0, pageOf(3, 8192))).status).toBe(200);
    for (const path of [
      "/",
      `/v1/objects/${object}`,
      `/v1/objects/${object}/pages?offset=100&length=5000`,
      `/v1/objects/${object}/pages?offset=0`, // 400: no length
      `/v1/objects/${object}/pages?offset=0&length=${MAX_BODY_BYTES + 1}`, // 400: too long
      `/v1/objects/${object}/syncs`,
      `/v1/objects/bad%21name`, // 400 from the Worker
      "/v2/nothing", // 404
    ]) {
      const get = await call(path);
      const getBody = await get.arrayBuffer();
      const head = await call(path, { method: "HEAD" });
      expect(head.status, path).toBe(get.status);
      expect([...head.headers], path).toEqual([...get.headers]);
      expect((await head.arrayBuffer()).byteLength, path).toBe(0);
      if (get.headers.has("content-length")) {
        expect(Number(head.headers.get("content-length")), path).toBe(getBody.byteLength);
      }
    }
    const pages = await call(`/v1/objects/${object}/pages?offset=100&length=5000`, {
      method: "HEAD",
    });
    expect(pages.headers.get("content-length")).toBe("5000");
  });

  it("takes a seqno like GET, changes nothing else, and reads no page from R2", async () => {
    const object = "w-head-pages";
    expect((await putPages(object, 0, pageOf(7, 8192))).status).toBe(200);
    expect((await synchronize(object, 0, 8192, VM_SYNC_SYNCHRONOUS)).status).toBe(200);
    const before = await stat(object);
    expect(before).toMatchObject({ pages: 2, journal_pages: 0 });
    const control = await wrapObjectBucket(object);
    const head = await call(`/v1/objects/${object}/pages?offset=0&length=8192`, {
      method: "HEAD",
    });
    expect(head.status).toBe(200);
    expect(control.reads).toBe(0);
    expect(await stat(object)).toEqual({ ...before, seqno: before.seqno + 2 });
    // The GET of the same range does read its segment.
    expect(await readPages(object, 0, 8192)).toEqual(pageOf(7, 8192));
    expect(control.reads).toBe(1);
  });
});

describe("DELETE", () => {
  it("destroys the object, tells connected kernels, and the name starts afresh", async () => {
    const object = "w-delete";
    const { kernel } = await TestKernel.open(object, "k1", { pageSize: 8192 });
    kernel.dataReturn(0, new Uint8Array(8192).fill(6));
    await kernel.completion(kernel.synchronize(0, 8192, VM_SYNC_SYNCHRONOUS));
    kernel.dataReturn(8192, new Uint8Array(8192).fill(7)); // left in the journal
    await kernel.ack(kernel.takeId() - 1);
    const segments = await env.PAGES.list({ prefix: `${object}/segments/` });
    expect(segments.objects.length).toBeGreaterThan(0);
    // Another object's segments must survive.
    await putPages(`${object}-other`, 0, pageOf(1));
    await synchronize(`${object}-other`, 0, 4096, VM_SYNC_SYNCHRONOUS);

    const response = await call(`/v1/objects/${object}`, { method: "DELETE" });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ object, deleted: true });

    expect(await kernel.next((m) => m.type === "memory_object_destroy")).toMatchObject({
      reason: expect.any(String),
    });
    for (let i = 0; i < 50 && kernel.closed === null; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(kernel.closed).not.toBeNull();
    // memory_object_destroy is the last thing the kernel got.
    expect(kernel.received.at(-1)!.type).toBe("memory_object_destroy");

    // A flush that was writing when the DELETE ran removes its segment right after; allow it.
    let left = await env.PAGES.list({ prefix: `${object}/segments/` });
    for (let i = 0; i < 50 && left.objects.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      left = await env.PAGES.list({ prefix: `${object}/segments/` });
    }
    expect(left.objects).toEqual([]);
    expect(
      (await env.PAGES.list({ prefix: `${object}-other/segments/` })).objects.length,
    ).toBeGreaterThan(0);

    // Afresh: the first request gets seqno 0, pages read zeros, no kernels, no page size.
    const put = await putPages(object, 65536, pageOf(2));
    expect(await put.json()).toEqual({ offset: 65536, length: 4096, seqno: 0 });
    const bytes = await readPages(object, 0, 16384);
    expect(bytes.every((b) => b === 0)).toBe(true);
    expect(await stat(object)).toMatchObject({
      object,
      page_size: 4096,
      pages: 1,
      journal_pages: 1,
      seqno: 3,
      kernels: [],
      syncs: 0,
    });
    // The kernel id starts afresh too (last_id 0); the page size is the one the PUT fixed.
    const again = await TestKernel.open(object, "k1");
    expect(again.ready).toMatchObject({ last_id: 0, flush: false, page_size: 4096, seqno: 3 });
    again.kernel.close();
  });

  it("an HTTP synchronize waiting when the object is deleted gets an error, not a hang", async () => {
    const object = "w-delete-waiting";
    expect((await putPages(object, 0, pageOf(1))).status).toBe(200);
    const puts = await wrapObjectBucket(object, { delayMs: 1000 });
    const waiting = synchronize(object, 0, 4096, VM_SYNC_SYNCHRONOUS);
    for (let i = 0; i < 100 && puts.attempts === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect((await stat(object)).syncs).toBe(1);
    expect((await call(`/v1/objects/${object}`, { method: "DELETE" })).status).toBe(200);
    const answer = await Promise.race([
      waiting,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000)),
    ]);
    expect(answer, "the synchronize never answered").not.toBeNull();
    await expectError(answer!, 409, "object_deleted", /deleted/, KERN_ABORTED);
    // The segment its flush was writing does not outlive the object: once the put has landed,
    // the segment goes.
    await waitFor(() => puts.written.length > 0, "the flush's put to land");
    await waitFor(
      async () => (await env.PAGES.list({ prefix: `${object}/segments/` })).objects.length === 0,
      "the deleted object's segment to go",
    );
  });

  it("a DELETE of a never-used object is fine", async () => {
    const response = await call("/v1/objects/w-delete-empty", { method: "DELETE" });
    expect(await response.json()).toEqual({ object: "w-delete-empty", deleted: true });
    expect(await stat("w-delete-empty")).toMatchObject({ seqno: 1, pages: 0 });
  });
});
