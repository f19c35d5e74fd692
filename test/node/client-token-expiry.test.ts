// A kernel's socket does not outlive its token (docs/security.md): the manager closes it with
// 4401 when the token expires, and the client stops with ConnectionClosedError instead of
// reconnecting with a token that would be refused (as deployed: authentication on).
import type { TestHarness } from "wrangler";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConnectionClosedError, KernelConnection } from "../../client";
import { CLOSE_TOKEN_EXPIRED, signToken } from "../../schema";
import { startAuthHarness } from "./harness";

const AUTH_SECRET = "token-expiry-secret";
let server: TestHarness;
let url: string;
beforeAll(async () => {
  ({ server, url } = await startAuthHarness(AUTH_SECRET));
}, 60_000);
afterAll(() => server?.close());

it("is closed with 4401 at the token's expiry, and the client stops with the reason", async () => {
  const exp = Math.floor(Date.now() / 1000) + 2;
  const token = await signToken(AUTH_SECRET, {
    object: "expiring",
    rights: ["read", "write"],
    exp,
  });
  const connection = await KernelConnection.connect({
    url,
    object: "expiring",
    kernel: "k1",
    token,
  });
  const disconnected = new Promise<{ code: number; reason: string }>((resolve) =>
    connection.on("disconnected", resolve),
  );
  const closed = await disconnected;
  expect(closed.code).toBe(CLOSE_TOKEN_EXPIRED);
  expect(Date.now() / 1000).toBeGreaterThanOrEqual(exp - 0.1);
  // Stopped, not reconnecting: what is asked of it now fails at once with the reason.
  await expect(connection.synchronize(0, 4096, 2)).rejects.toBeInstanceOf(ConnectionClosedError);
});
