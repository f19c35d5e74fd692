// Credentials end to end: tokens checked by the Worker, rights per route and per socket message,
// and a deployment without its secret failing closed. The real app and Durable Object, with the
// secret set in the env passed to the app.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, signToken, type Grant } from "../schema";
import app from "./index";

const SECRET = "a test secret, not a real one";
const secured = { ...env, AUTH_SECRET: SECRET, REQUIRE_AUTH: "true" } as Env;
const hour = () => Math.floor(Date.now() / 1000) + 3600;

function request(path: string, init: RequestInit = {}, withEnv: Env = secured) {
  return app.fetch(new Request(`http://edgepager.test${path}`, init), withEnv);
}

function token(grant: Partial<Grant> = {}, secret = SECRET) {
  return signToken(secret, {
    object: "auth-*",
    rights: ["read", "write", "admin"],
    exp: hour(),
    ...grant,
  });
}

async function bearer(grant: Partial<Grant> = {}) {
  return { authorization: `Bearer ${await token(grant)}` };
}

async function errorOf(response: Response) {
  return (
    (await response.json()) as { error: { code: string; kern_return: number; message: string } }
  ).error;
}

describe("failing closed", () => {
  it("refuses every request when authentication is required and the secret is missing", async () => {
    const unconfigured = { ...env, REQUIRE_AUTH: "true" } as Env;
    for (const [path, method] of [
      ["/", "GET"],
      ["/v1/objects/auth-closed", "GET"],
      ["/v1/objects/auth-closed/pages?offset=0", "PUT"],
      ["/v1/objects/auth-closed/control?kernel=k1", "GET"],
    ] as const) {
      const response = await request(
        path,
        { method, body: method === "PUT" ? new Uint8Array(4096) : undefined },
        unconfigured,
      );
      expect(response.status, `${method} ${path}`).toBe(503);
      expect(await errorOf(response)).toMatchObject({ code: "auth_unconfigured", kern_return: 2 });
    }
    // Nothing reached the object: this status request is the first message it numbers.
    const open = { ...env, REQUIRE_AUTH: "false" } as Env;
    const status = await (await request("/v1/objects/auth-closed", {}, open)).json();
    expect(status).toMatchObject({ pages: 0, seqno: 1 });
  });

  it("serves everyone when neither a secret nor REQUIRE_AUTH is set (local development)", async () => {
    const response = await request("/v1/objects/auth-open", {}, {
      ...env,
      REQUIRE_AUTH: "false",
    } as Env);
    expect(response.status).toBe(200);
  });
});

describe("tokens", () => {
  it("needs one: missing, malformed, badly signed or expired gets 401", async () => {
    const cases: [string, Record<string, string>][] = [
      ["missing", {}],
      ["malformed", { authorization: "Bearer nonsense" }],
      [
        "signed with another secret",
        { authorization: `Bearer ${await token({}, "another secret")}` },
      ],
      ["expired", await bearer({ exp: Math.floor(Date.now() / 1000) - 1 })],
    ];
    for (const [what, headers] of cases) {
      const response = await request("/v1/objects/auth-a", { headers });
      expect(response.status, what).toBe(401);
      expect(await errorOf(response), what).toMatchObject({ code: "unauthorized", kern_return: 2 });
    }
  });

  it("accepts Authorization: Bearer on every route, access_token only on a socket upgrade", async () => {
    const object = "/v1/objects/auth-query";
    const routes: [string, string, BodyInit?][] = [
      ["GET", object],
      ["GET", `${object}/pages?offset=0&length=4096`],
      ["PUT", `${object}/pages?offset=0`, new Uint8Array(4096)],
      ["POST", `${object}/synchronize`, JSON.stringify({ offset: 0, length: 4096, sync_flags: 2 })],
      ["GET", `${object}/syncs`],
      ["DELETE", object],
      ["GET", `${object}/control?kernel=k1`], // no Upgrade: not a socket
    ];
    const query = `access_token=${encodeURIComponent(await token())}`;
    for (const [method, path, body] of routes) {
      const withQuery = `${path}${path.includes("?") ? "&" : "?"}${query}`;
      for (const headers of [{}, await bearer()]) {
        const response = await request(withQuery, { method, headers, body });
        const what = `${method} ${withQuery} ${Object.keys(headers).join()}`;
        expect(response.status, what).toBe(401);
        expect(await errorOf(response), what).toMatchObject({
          code: "unauthorized",
          kern_return: 2,
          message: expect.stringMatching(
            /access_token is accepted only on a WebSocket upgrade of \/v1\/objects\/\{name\}\/control/,
          ),
        });
      }
    }
    // None reached the object: the first request it numbers is the next one.
    const status = await request(object, { headers: await bearer() });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ seqno: 1, pages: 0 });
    // The header works on every route.
    for (const [method, path, body] of routes.slice(0, -1)) {
      const response = await request(path, { method, headers: await bearer(), body });
      expect(response.status, `${method} ${path}`).toBe(200);
    }
    // The socket upgrade takes it in the query.
    const upgrade = await request(`${object}/control?kernel=k1&${query}`, {
      headers: { upgrade: "websocket" },
    });
    expect(upgrade.status).toBe(101);
    upgrade.webSocket!.accept();
    upgrade.webSocket!.close();
  });

  it("covers only the objects of its pattern: 403 for others", async () => {
    const exact = await bearer({ object: "auth-exact" });
    expect((await request("/v1/objects/auth-exact", { headers: exact })).status).toBe(200);
    expect((await request("/v1/objects/auth-exactly", { headers: exact })).status).toBe(403);
    const response = await request("/v1/objects/other-tenant", { headers: await bearer() });
    expect(response.status).toBe(403);
    expect((await errorOf(response)).message).toMatch(/auth-\*/);
  });

  it("needs write to write and synchronize, admin to delete, read to HEAD", async () => {
    const readOnly = await bearer({ rights: ["read"] });
    const put = await request("/v1/objects/auth-rights/pages?offset=0", {
      method: "PUT",
      headers: readOnly,
      body: new Uint8Array(4096),
    });
    expect(put.status).toBe(403);
    expect(await errorOf(put)).toMatchObject({ code: "forbidden", kern_return: 2 });
    const sync = await request("/v1/objects/auth-rights/synchronize", {
      method: "POST",
      headers: readOnly,
      body: JSON.stringify({ offset: 0, length: 4096, sync_flags: 2 }),
    });
    expect(sync.status).toBe(403);
    const writer = await bearer({ rights: ["read", "write"] });
    expect(
      (await request("/v1/objects/auth-rights", { method: "DELETE", headers: writer })).status,
    ).toBe(403);
    // The refused requests changed nothing.
    const status = (await (
      await request("/v1/objects/auth-rights", { headers: readOnly })
    ).json()) as { pages: number };
    expect(status.pages).toBe(0);
    // A HEAD is a read: it needs the read right, like its GET.
    for (const path of ["/v1/objects/auth-rights", "/v1/objects/auth-rights/syncs"]) {
      const head = { method: "HEAD" };
      expect((await request(path, head)).status, `HEAD ${path}`).toBe(401);
      const writeOnly = { ...head, headers: await bearer({ rights: ["write"] }) };
      expect((await request(path, writeOnly)).status, `HEAD ${path}`).toBe(403);
      expect((await request(path, { ...head, headers: readOnly })).status).toBe(200);
    }
    const admin = await bearer({ rights: ["admin"] });
    expect(
      (await request("/v1/objects/auth-rights", { method: "DELETE", headers: admin })).status,
    ).toBe(200);
  });
});

describe("sockets", () => {
  async function open(grant: Partial<Grant>, extraHeaders: Record<string, string> = {}) {
    const response = await request(
      `/v1/objects/auth-socket/control?kernel=k1&access_token=${encodeURIComponent(await token(grant))}`,
      { headers: { upgrade: "websocket", ...extraHeaders } },
    );
    const socket = response.webSocket!;
    socket.accept();
    const received: Record<string, unknown>[] = [];
    socket.addEventListener("message", (event) => {
      const data = event.data as string | Blob;
      if (typeof data === "string") received.push(decodeFrame(data).header);
      else void data.arrayBuffer().then((bytes) => received.push(decodeFrame(bytes).header));
    });
    const next = async (match: (m: Record<string, unknown>) => boolean) => {
      for (let i = 0; i < 200; i++) {
        const found = received.find(match);
        if (found) return found;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no matching message in ${JSON.stringify(received)}`);
    };
    socket.send(
      JSON.stringify({ type: "memory_object_init", id: 1, page_size: 4096, received_mid: 0 }),
    );
    await next((m) => m.type === "memory_object_ready");
    return { socket, next };
  }

  it("refuses the upgrade without a token", async () => {
    const response = await request("/v1/objects/auth-socket/control?kernel=k1", {
      headers: { upgrade: "websocket" },
    });
    expect(response.status).toBe(401);
  });

  it("answers a message the token does not allow with KERN_PROTECTION_FAILURE, and changes nothing", async () => {
    // A forged grant header is overwritten by the Worker: the token alone decides.
    const { socket, next } = await open(
      { rights: ["read"] },
      { "x-edgepager-grant": '{"rights":["read","write","admin"],"exp":9e15}' },
    );
    const header = {
      type: "memory_object_data_return",
      id: 2,
      offset: 0,
      length: 4096,
      dirty: true,
      kernel_copy: false,
    };
    socket.send(encodeFrame(header, new Uint8Array(4096).fill(9)));
    expect(await next((m) => m.reply_to === 2)).toMatchObject({
      type: "error",
      kern_return: 2,
      code: "forbidden",
    });
    socket.send(
      JSON.stringify({
        type: "memory_object_data_request",
        id: 3,
        offset: 0,
        length: 4096,
        desired_access: 1,
      }),
    );
    expect(await next((m) => m.reply_to === 3)).toMatchObject({
      type: "memory_object_data_unavailable",
    });
    socket.close();
  });

  it("lets a writer return pages and synchronize", async () => {
    const { socket, next } = await open({ rights: ["read", "write"] });
    const header = {
      type: "memory_object_data_return",
      id: 2,
      offset: 0,
      length: 4096,
      dirty: true,
      kernel_copy: false,
    };
    socket.send(encodeFrame(header, new Uint8Array(4096).fill(9)));
    expect(await next((m) => m.type === "ack" && m.id === 2)).toBeTruthy();
    socket.send(
      JSON.stringify({
        type: "memory_object_synchronize",
        id: 3,
        offset: 0,
        length: 4096,
        sync_flags: 2,
      }),
    );
    expect(await next((m) => m.type === "memory_object_synchronize_completed")).toMatchObject({
      reply_to: 3,
    });
    socket.close();
  });
});
