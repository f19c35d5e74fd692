// Browser origins (ALLOWED_ORIGINS): a page from an origin not in the list is refused, sockets
// included, with authentication off or on; a page from one in it gets answered preflights and CORS
// headers on every response, errors included; clients that send no Origin are untouched; a
// malformed list fails loudly. The real app and Durable Object, with the var set per request's env.
// A real browser does the same end to end in test/node/browser-origins.test.ts.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { signToken } from "../schema";
import { PREFLIGHT_MAX_AGE_SECONDS, readAllowedOrigins } from "./allow-origins";
import app from "./index";

const APP = "http://localhost:5173";
const OTHER = "http://evil.test:8080";
const SECRET = "a test secret, not a real one";

function withVars(vars: Partial<Env>): Env {
  return { ...env, REQUIRE_AUTH: "false", ALLOWED_ORIGINS: APP, ...vars } as Env;
}

function request(path: string, init: RequestInit = {}, vars: Partial<Env> = {}) {
  return app.fetch(new Request(`http://edgepager.test${path}`, init), withVars(vars));
}

async function errorOf(response: Response) {
  return (
    (await response.json()) as { error: { code: string; kern_return: number; message: string } }
  ).error;
}

function varyOf(response: Response): string[] {
  return (response.headers.get("vary") ?? "").split(",").map((v) => v.trim().toLowerCase());
}

function expectNoCors(response: Response) {
  expect(response.headers.get("access-control-allow-origin")).toBeNull();
  expect(response.headers.get("access-control-allow-methods")).toBeNull();
}

function expectCors(response: Response, origin = APP) {
  expect(response.headers.get("access-control-allow-origin")).toBe(origin);
  expect(varyOf(response)).toContain("origin");
  expect(response.headers.get("access-control-allow-credentials")).toBeNull();
}

async function bearer(object = "origins-*") {
  const token = await signToken(SECRET, {
    object,
    rights: ["read", "write", "admin"],
    exp: Math.floor(Date.now() / 1000) + 3600,
  });
  return { authorization: `Bearer ${token}` };
}

describe("an origin not in ALLOWED_ORIGINS", () => {
  it("is refused on every route with 403 origin_not_allowed and no CORS headers", async () => {
    for (const [path, init] of [
      ["/", {}],
      ["/v1/objects/origins-refused", {}],
      ["/v1/objects/origins-refused/pages?offset=0&length=4096", {}],
      ["/v1/objects/origins-refused/pages?offset=0", { method: "PUT", body: new Uint8Array(4096) }],
      ["/v1/objects/origins-refused", { method: "DELETE" }],
      // A preflight: the browser then never sends the request.
      [
        "/v1/objects/origins-refused/pages?offset=0",
        { method: "OPTIONS", headers: { "access-control-request-method": "PUT" } },
      ],
    ] as [string, RequestInit][]) {
      for (const origin of [OTHER, "null", `${APP}.evil.test`, "http://localhost:5174"]) {
        const headers = new Headers(init.headers);
        headers.set("origin", origin);
        const response = await request(path, { ...init, headers });
        const what = `${init.method ?? "GET"} ${path} from ${origin}`;
        expect(response.status, what).toBe(403);
        expectNoCors(response);
        expect(await errorOf(response), what).toMatchObject({
          code: "origin_not_allowed",
          kern_return: 2,
        });
      }
    }
  });

  it("cannot make a request a browser sends without a preflight reach the object", async () => {
    // A form-like cross-site POST (text/plain): no preflight, so the Worker must refuse it itself.
    const response = await request("/v1/objects/origins-simple/synchronize", {
      method: "POST",
      headers: { origin: OTHER, "content-type": "text/plain" },
      body: JSON.stringify({ offset: 0, length: 4096, sync_flags: 2 }),
    });
    expect(response.status).toBe(403);
    // Nothing reached the object: this status request is the first message it numbers.
    const status = await (await request("/v1/objects/origins-simple")).json();
    expect(status).toMatchObject({ seqno: 1, pages: 0 });
  });

  it("is refused when the browser hides it but says the request is from another site", async () => {
    // A no-cors GET (an <img>, a link) carries no Origin, only Fetch Metadata.
    for (const site of ["cross-site", "same-site"]) {
      const response = await request("/v1/objects/origins-hidden/pages?offset=0&length=4096", {
        headers: { "sec-fetch-site": site, "sec-fetch-mode": "no-cors" },
      });
      expect(response.status, site).toBe(403);
      expectNoCors(response);
      expect((await errorOf(response)).code).toBe("origin_not_allowed");
    }
    // Nothing reached the object: this status request is the first message it numbers.
    for (const site of ["same-origin", "none"]) {
      const response = await request("/v1/objects/origins-hidden", {
        headers: { "sec-fetch-site": site },
      });
      expect(response.status, site).toBe(200);
      if (site === "same-origin") expect(await response.json()).toMatchObject({ seqno: 1 });
    }
  });

  it("cannot open a control socket, with authentication off or on", async () => {
    const authOn = { AUTH_SECRET: SECRET, REQUIRE_AUTH: "true" } as Partial<Env>;
    for (const vars of [{}, authOn, { ALLOWED_ORIGINS: "" }]) {
      const query =
        vars === authOn ? `&access_token=${(await bearer()).authorization.slice(7)}` : "";
      const response = await request(`/v1/objects/origins-socket/control?kernel=k1${query}`, {
        headers: { upgrade: "websocket", origin: OTHER },
      });
      expect(response.status).toBe(403);
      expect(response.webSocket).toBeNull();
      const error = await errorOf(response);
      expect(error.code).toBe("origin_not_allowed");
      expect(error.message).toContain(OTHER);
      expect(error.message).toContain("ALLOWED_ORIGINS");
    }
  });
});

describe("an origin in ALLOWED_ORIGINS", () => {
  it("gets its preflight answered: methods, Authorization and Content-Type, max age", async () => {
    for (const method of ["PUT", "POST", "DELETE", "GET"]) {
      const response = await request("/v1/objects/origins-ok/pages?offset=0", {
        method: "OPTIONS",
        headers: {
          origin: APP,
          "access-control-request-method": method,
          "access-control-request-headers": "authorization,content-type",
        },
      });
      expect(response.status).toBe(204);
      expectCors(response);
      const methods = response.headers.get("access-control-allow-methods")!.split(",");
      expect(methods).toEqual(expect.arrayContaining(["GET", "PUT", "POST", "DELETE"]));
      const headers = response.headers.get("access-control-allow-headers")!.toLowerCase();
      expect(headers.split(",")).toEqual(expect.arrayContaining(["authorization", "content-type"]));
      expect(response.headers.get("access-control-max-age")).toBe(
        String(PREFLIGHT_MAX_AGE_SECONDS),
      );
    }
  });

  it("gets CORS headers on answers, errors included", async () => {
    const from = { origin: APP };
    const put = await request("/v1/objects/origins-ok/pages?offset=0", {
      method: "PUT",
      headers: from,
      body: new Uint8Array(4096).fill(7),
    });
    expect(put.status).toBe(200);
    expectCors(put);
    const read = await request("/v1/objects/origins-ok/pages?offset=0&length=4096", {
      headers: from,
    });
    expectCors(read);
    expect(new Uint8Array(await read.arrayBuffer())).toEqual(new Uint8Array(4096).fill(7));
    // Errors from the Worker (no route, too large, bad name) and from the object (misaligned).
    for (const [path, init, status] of [
      ["/v1/nothing-here", {}, 404],
      [
        "/v1/objects/origins-ok/synchronize",
        { method: "POST", body: new Uint8Array(65 * 1024) },
        413,
      ],
      ["/v1/objects/origins-ok/pages?offset=1", { method: "PUT", body: new Uint8Array(4096) }, 400],
    ] as [string, RequestInit, number][]) {
      const headers = new Headers(init.headers);
      headers.set("origin", APP);
      const response = await request(path, { ...init, headers });
      expect(response.status, path).toBe(status);
      expectCors(response);
      expect((await errorOf(response)).code).toBeTruthy();
    }
  });

  it("gets CORS headers on 401 and 403 with authentication on, and on the 503 of a deployment failing closed", async () => {
    const authOn = { AUTH_SECRET: SECRET, REQUIRE_AUTH: "true" } as Partial<Env>;
    const missing = await request("/v1/objects/origins-auth", { headers: { origin: APP } }, authOn);
    expect(missing.status).toBe(401);
    expectCors(missing);
    const other = await request(
      "/v1/objects/other-tenant",
      { headers: { origin: APP, ...(await bearer()) } },
      authOn,
    );
    expect(other.status).toBe(403);
    expectCors(other);
    const ok = await request(
      "/v1/objects/origins-auth",
      { headers: { origin: APP, ...(await bearer()) } },
      authOn,
    );
    expect(ok.status).toBe(200);
    expectCors(ok);
    const closed = await request(
      "/v1/objects/origins-auth",
      { headers: { origin: APP } },
      { REQUIRE_AUTH: "true" },
    );
    expect(closed.status).toBe(503);
    expectCors(closed);
    expect((await errorOf(closed)).code).toBe("auth_unconfigured");
  });

  it("opens a control socket", async () => {
    const response = await request("/v1/objects/origins-socket/control?kernel=k1", {
      headers: { upgrade: "websocket", origin: APP },
    });
    expect(response.status).toBe(101);
    const socket = response.webSocket!;
    socket.accept();
    const ready = new Promise<string>((resolve) =>
      socket.addEventListener("message", (event) => resolve(event.data as string)),
    );
    socket.send(
      JSON.stringify({ type: "memory_object_init", id: 1, page_size: 4096, received_mid: 0 }),
    );
    expect(JSON.parse(await ready)).toMatchObject({ type: "memory_object_ready" });
    socket.close();
  });

  it("is one of several, each matched exactly", async () => {
    const vars = { ALLOWED_ORIGINS: ` ${APP} , https://app.example.com ,` };
    for (const origin of [APP, "https://app.example.com"]) {
      const response = await request("/", { headers: { origin } }, vars);
      expect(response.status).toBe(200);
      expectCors(response, origin);
    }
    const refused = await request("/", { headers: { origin: "https://example.com" } }, vars);
    expect(refused.status).toBe(403);
  });
});

describe("clients that send no Origin", () => {
  it("are served as before, whatever the list, with Vary: Origin", async () => {
    for (const list of ["", APP]) {
      const response = await request("/v1/objects/origins-plain", {}, { ALLOWED_ORIGINS: list });
      expect(response.status).toBe(200);
      expectNoCors(response);
      expect(varyOf(response)).toContain("origin");
    }
    const response = await request("/v1/objects/origins-plain/control?kernel=k1", {
      headers: { upgrade: "websocket" },
    });
    expect(response.status).toBe(101);
    response.webSocket!.accept();
    response.webSocket!.close();
  });
});

describe("the ALLOWED_ORIGINS var", () => {
  it('allows "*" alone, and only with authentication on', async () => {
    expect(readAllowedOrigins({ ALLOWED_ORIGINS: "*", AUTH_SECRET: SECRET })).toBe("*");
    const authOn = { ALLOWED_ORIGINS: "*", AUTH_SECRET: SECRET, REQUIRE_AUTH: "true" };
    const response = await request(
      "/v1/objects/origins-star",
      { headers: { origin: OTHER, ...(await bearer()) } },
      authOn,
    );
    expect(response.status).toBe(200);
    expectCors(response, OTHER);
    const hidden = await request(
      "/v1/objects/origins-star",
      { headers: { "sec-fetch-site": "cross-site", ...(await bearer()) } },
      authOn,
    );
    expect(hidden.status).toBe(200);
    // Without authentication every request fails, so the mistake is seen at once.
    const open = await request("/v1/objects/origins-star", {}, { ALLOWED_ORIGINS: "*" });
    expect(open.status).toBe(500);
    expect(await errorOf(open)).toMatchObject({ code: "bad_config", kern_return: 5 });
    expect(() => readAllowedOrigins({ ALLOWED_ORIGINS: "*" })).toThrow(/needs authentication/);
    expect(() => readAllowedOrigins({ ALLOWED_ORIGINS: `*,${APP}`, AUTH_SECRET: SECRET })).toThrow(
      /alone/,
    );
  });

  it("refuses what is not an origin as a browser sends it, naming the entry", async () => {
    for (const [value, hint] of [
      ["http://localhost:5173/", '"http://localhost:5173"'],
      ["http://LOCALHOST:5173", '"http://localhost:5173"'],
      ["https://app.example.com:443", '"https://app.example.com"'],
      ["http://localhost:5173/app", '"http://localhost:5173"'],
      ["localhost:5173", null],
      ["ftp://files.example.com", null],
      ["null", null],
      [`${APP} http://other.test`, null],
    ] as [string, string | null][]) {
      let message = "";
      try {
        readAllowedOrigins({ ALLOWED_ORIGINS: value });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message, value).toContain("ALLOWED_ORIGINS");
      expect(message, value).toContain(JSON.stringify(value.split(",")[0]!.trim()));
      if (hint) expect(message, value).toContain(hint);
    }
    // Through the app: every request fails with the reason, browser or not.
    const response = await request("/", {}, { ALLOWED_ORIGINS: "http://localhost:5173/" });
    expect(response.status).toBe(500);
    expect((await errorOf(response)).message).toMatch(
      /ALLOWED_ORIGINS "http:\/\/localhost:5173\/"/,
    );
  });

  it("is empty by default: no browser origin, top level and production alike", () => {
    expect(env.ALLOWED_ORIGINS).toBe("");
    expect(readAllowedOrigins({ ALLOWED_ORIGINS: "" })).toEqual(new Set());
  });
});
