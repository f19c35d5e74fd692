// The deployed configuration ([env.production] in wrangler.toml) fails closed: with no
// AUTH_SECRET it refuses every request. And its vars stay those of the top level but for
// REQUIRE_AUTH, so what is tested locally is what ships; and it keeps logs and traces.
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestHarness, unstable_readConfig, type TestHarness } from "wrangler";

process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
process.env.WRANGLER_SEND_METRICS = "false";

let server: TestHarness;
let url: URL;

beforeAll(async () => {
  server = createTestHarness({ workers: [{ configPath: "./wrangler.toml", env: "production" }] });
  ({ url } = await server.listen());
});
afterAll(() => server?.close());

it("refuses every request without AUTH_SECRET (503 auth_unconfigured)", async () => {
  for (const [path, init] of [
    ["/", {}],
    ["/v1/objects/prod/pages?offset=0&length=4096", {}],
    ["/v1/objects/prod/pages?offset=0", { method: "PUT", body: new Uint8Array(4096) }],
  ] as [string, RequestInit][]) {
    const response = await fetch(new URL(path, url), init);
    expect(response.status, path).toBe(503);
    expect(await response.json()).toMatchObject({ error: { code: "auth_unconfigured" } });
  }
  const socketUrl = new URL("/v1/objects/prod/control?kernel=k1", url);
  socketUrl.protocol = "ws:";
  const socket = new WebSocket(socketUrl);
  const outcome = await new Promise<string>((resolve) => {
    socket.addEventListener("open", () => resolve("open"));
    socket.addEventListener("error", () => resolve("refused"));
  });
  expect(outcome).toBe("refused");
});

it("ships the same vars as the top level, except REQUIRE_AUTH", () => {
  const local = unstable_readConfig({ config: "wrangler.toml" }).vars;
  const production = unstable_readConfig({ config: "wrangler.toml", env: "production" }).vars;
  expect({ ...production, REQUIRE_AUTH: local.REQUIRE_AUTH }).toEqual(local);
  expect(local.REQUIRE_AUTH).toBe("false");
  expect(production.REQUIRE_AUTH).toBe("true");
});

it("turns on logs and traces where it is deployed", () => {
  const { observability } = unstable_readConfig({ config: "wrangler.toml", env: "production" });
  expect(observability).toMatchObject({
    enabled: true,
    logs: { enabled: true, invocation_logs: true },
    traces: { enabled: true },
  });
});
