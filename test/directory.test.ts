/**
 * The object directory (`GET /v1/objects`, schema/directory.ts): an object is listed as soon as
 * the request that created it is answered (an HTTP write or a kernel's init), with its page
 * size, mode, pages, bytes and times; pages come a page of names at a time with a cursor, by
 * prefix; DELETE unlists at once; a token lists only the names its pattern covers; bad
 * parameters get 400 naming the field. The listing is R2's, by prefix: no Durable Object sees it.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { signToken, type DirectoryEntry, type Grant } from "../schema";
import app from "../worker/index";
import { call, putPages } from "./helpers/http";
import { TestKernel, pageOf } from "./helpers/kernel";

type Listing = { objects: DirectoryEntry[]; cursor: string | null };

async function list(query = ""): Promise<Listing> {
  const response = await call(`/v1/objects${query}`);
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as Listing;
}

/** Every name under `prefix`, following cursors `limit` at a time; also the number of pages. */
async function listAll(prefix: string, limit: number): Promise<{ names: string[]; pages: number }> {
  const names: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const query: string = `?prefix=${prefix}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const page: Listing = await list(query);
    pages++;
    expect(page.objects.length).toBeLessThanOrEqual(limit);
    names.push(...page.objects.map((o) => o.object));
    cursor = page.cursor;
  } while (cursor !== null);
  return { names, pages };
}

describe("the directory", () => {
  it("lists an object once its creating write is answered, with its figures", async () => {
    const before = Date.now();
    expect((await putPages("dir-a.one", 0, pageOf(1, 512), "&page_size=512")).status).toBe(200);
    const { objects } = await list("?prefix=dir-a.");
    expect(objects).toHaveLength(1);
    const entry = objects[0]!;
    expect(entry).toMatchObject({ object: "dir-a.one", page_size: 512, coherent: false });
    expect(Date.parse(entry.created)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(entry.last_activity)).toBeGreaterThanOrEqual(Date.parse(entry.created));
  });

  it("lists an object a kernel's init created, before the ready arrives", async () => {
    const { kernel, ready } = await TestKernel.open("dir-k.made-by-init", "k1", { coherent: true });
    expect(ready.type).toBe("memory_object_ready");
    expect((await list("?prefix=dir-k.")).objects).toMatchObject([
      { object: "dir-k.made-by-init", page_size: 4096, coherent: true, pages: 0 },
    ]);
    kernel.close();
  });

  it("does not list a name nobody wrote, only read", async () => {
    expect((await call("/v1/objects/dir-r.only-read")).status).toBe(200);
    expect((await list("?prefix=dir-r.")).objects).toEqual([]);
  });

  it("pages through many objects by prefix, in name order, each exactly once", async () => {
    const names = Array.from({ length: 23 }, (_, i) => `dir-m.${String(i).padStart(2, "0")}`);
    for (const name of names) expect((await putPages(name, 0, pageOf(2))).status).toBe(200);
    // Another prefix beside it stays out.
    expect((await putPages("dir-mx", 0, pageOf(2))).status).toBe(200);
    const { names: listed, pages } = await listAll("dir-m.", 5);
    expect(listed).toEqual(names);
    expect(pages).toBe(5);
  });

  it("unlists a deleted object at once, and lists it again when it is written again", async () => {
    const name = "dir-d.gone";
    expect((await putPages(name, 0, pageOf(3))).status).toBe(200);
    expect((await list("?prefix=dir-d.")).objects).toHaveLength(1);
    expect((await call(`/v1/objects/${name}`, { method: "DELETE" })).status).toBe(200);
    expect((await list("?prefix=dir-d.")).objects).toEqual([]);
    expect((await putPages(name, 0, pageOf(4), "&page_size=1024")).status).toBe(200);
    expect((await list("?prefix=dir-d.")).objects).toMatchObject([
      { object: name, page_size: 1024 },
    ]);
  });

  it("refuses bad parameters with 400 naming the field", async () => {
    for (const [query, field] of [
      ["?limit=0", "limit"],
      ["?limit=1001", "limit"],
      ["?limit=ten", "limit"],
      ["?prefix=a/b", "prefix"],
    ] as const) {
      const response = await call(`/v1/objects${query}`);
      expect(response.status, query).toBe(400);
      const { error } = (await response.json()) as { error: { message: string } };
      expect(error.message, query).toMatch(new RegExp(`^${field}`));
    }
  });
});

describe("the directory with tokens", () => {
  const SECRET = "a test secret, not a real one";
  const secured = { ...env, AUTH_SECRET: SECRET, REQUIRE_AUTH: "true" } as Env;
  const hour = () => Math.floor(Date.now() / 1000) + 3600;

  async function listAs(grant: Partial<Grant>, query = ""): Promise<Response> {
    const token = await signToken(SECRET, { object: "*", rights: ["read"], exp: hour(), ...grant });
    return app.fetch(
      new Request(`http://edgepager.test/v1/objects${query}`, {
        headers: { authorization: `Bearer ${token}` },
      }),
      secured,
      // The Worker's execution context, as the runtime would pass it.
      { waitUntil: () => undefined, passThroughOnException: () => undefined } as never,
    );
  }

  it("shows only the names a token's pattern covers", async () => {
    for (const name of ["dir-t.a.1", "dir-t.a.2", "dir-t.b.1"]) {
      expect(
        (
          await exports.default.fetch(`http://edgepager.test/v1/objects/${name}/pages?offset=0`, {
            method: "PUT",
            body: pageOf(5),
          })
        ).status,
      ).toBe(200);
    }
    const names = async (response: Response) =>
      ((await response.json()) as Listing).objects.map((o) => o.object);
    expect(await names(await listAs({ object: "dir-t.a.*" }, "?prefix=dir-t."))).toEqual([
      "dir-t.a.1",
      "dir-t.a.2",
    ]);
    // A prefix outside the pattern lists nothing; one inside it narrows it.
    expect(await names(await listAs({ object: "dir-t.a.*" }, "?prefix=dir-t.b"))).toEqual([]);
    expect(await names(await listAs({ object: "dir-t.a.*" }, "?prefix=dir-t.a.2"))).toEqual([
      "dir-t.a.2",
    ]);
    // An exact name sees that one object.
    expect(await names(await listAs({ object: "dir-t.a.1" }, "?prefix=dir-t."))).toEqual([
      "dir-t.a.1",
    ]);
    // Listing needs the read right, and a token.
    expect((await listAs({ object: "dir-t.*", rights: ["write"] })).status).toBe(403);
    const anonymous = await app.fetch(new Request("http://edgepager.test/v1/objects"), secured);
    expect(anonymous.status).toBe(401);
  });
});
