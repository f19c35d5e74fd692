// The kill test: the local server killed with SIGKILL right after acks (no shutdown of any
// kind) loses nothing that was acked. The idle flush is set far away, so the acked pages live
// only in the Durable Object's SQLite journal when the server dies.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { HttpClient, KernelConnection } from "../../client";
import { freePort, startWranglerDev, type DevServer } from "./harness";

const PAGE = 4096;
const persistTo = mkdtempSync(join(tmpdir(), "edgepager-kill-"));
const vars = { FLUSH_DELAY_MS: "600000", FLUSH_RETRY_MS: "20", LOCK_TIMEOUT_MS: "2000" };
let server: DevServer | undefined;

afterAll(async () => {
  await server?.stop();
  rmSync(persistTo, { recursive: true, force: true });
});

function pageOf(seed: number): Uint8Array {
  return Uint8Array.from({ length: PAGE }, (_, i) => (seed * 31 + i) % 251);
}

it("keeps every acked page across a SIGKILL of the whole local server", async () => {
  const port = await freePort();
  server = await startWranglerDev({ port, persistTo, vars });
  const kernel = await KernelConnection.connect({
    url: server.url,
    object: "killed",
    kernel: "k1",
    connectTimeoutMs: 30_000,
  });
  // 64 pages over the socket, in frames of 8 pages, each awaited to its ack.
  for (let frame = 0; frame < 8; frame++) {
    const body = new Uint8Array(8 * PAGE);
    for (let i = 0; i < 8; i++) body.set(pageOf(frame * 8 + i), i * PAGE);
    await kernel.dataReturn(frame * 8 * PAGE, body);
  }
  // And one over HTTP, answered once journaled.
  const http = new HttpClient(server.url);
  await http.write("killed", 64 * PAGE, pageOf(64));
  expect((await http.stat("killed")).journal_pages).toBe(65);

  await server.kill();
  kernel.close();
  server = await startWranglerDev({ port, persistTo, vars });

  const bytes = await new HttpClient(server.url).read("killed", 0, 65 * PAGE);
  for (let page = 0; page < 65; page++) {
    expect(bytes.subarray(page * PAGE, (page + 1) * PAGE), `page ${page}`).toEqual(pageOf(page));
  }
  const status = await new HttpClient(server.url).stat("killed");
  expect(status).toMatchObject({
    pages: 65,
    kernels: [{ kernel: "k1", last_id: expect.any(Number) }],
  });
  expect(status.kernels[0]!.last_id).toBeGreaterThanOrEqual(9);
});
