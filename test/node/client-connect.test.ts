// KernelConnection.connect gives up after connectTimeoutMs when no manager answers, and stops
// retrying; without the option it keeps trying (a Mach kernel has no timeout).
import { createServer } from "node:net";
import { expect, it } from "vitest";
import { ConnectionClosedError, KernelConnection } from "../../client";

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

it("rejects with ConnectionClosedError after connectTimeoutMs, and stops retrying", async () => {
  const port = await closedPort();
  const attempts: string[] = [];
  class CountingWebSocket extends WebSocket {
    constructor(url: string | URL) {
      super(url);
      attempts.push(String(url));
    }
  }
  const started = Date.now();
  await expect(
    KernelConnection.connect({
      url: `http://127.0.0.1:${port}`,
      object: "nowhere",
      kernel: "k1",
      connectTimeoutMs: 400,
      backoff: { initialMs: 20, maxMs: 50 },
      WebSocket: CountingWebSocket,
    }),
  ).rejects.toBeInstanceOf(ConnectionClosedError);
  expect(Date.now() - started).toBeGreaterThanOrEqual(350);
  expect(attempts.length).toBeGreaterThan(1);
  const after = attempts.length;
  // A retry would come from the client's own backoff timer (at most 50 ms here), which no
  // message stands for: only time can show that none is left running.
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(attempts.length).toBe(after);
});
