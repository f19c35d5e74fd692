// End to end, through the client only: the whole local server (`wrangler dev`, state persisted
// to a directory) is stopped and started again while a kernel is connected. The data written
// before must be intact, and the kernel must reconnect on its own and finish the msyncs it issued
// before and during the outage, each exactly once (docs/protocol.md §3, docs/architecture.md §6).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import {
  HttpClient,
  KernelConnection,
  PageCache,
  VM_SYNC_ASYNCHRONOUS,
  VM_SYNC_SYNCHRONOUS,
} from "../../client";
import { FAST_VARS, freePort, startWranglerDev, within, type DevServer } from "./harness";
import { waitFor } from "../helpers/wait";
import { TrackedKernel, firstDifference, pattern } from "./kernels";

const OBJECT = "e2e-restart";
const PAGE = 4096;
const PAGES = 24;
/** No idle flush within the test: what only the journal (SQLite) holds must survive too. */
const vars = { ...FAST_VARS, FLUSH_DELAY_MS: "600000" };

const persistTo = mkdtempSync(join(tmpdir(), "edgepager-e2e-restart-"));
let server: DevServer | null = null;
afterAll(async () => {
  await server?.stop();
  rmSync(persistTo, { recursive: true, force: true });
});

it("stopping and restarting the server: data intact, the kernel reconnects and its msyncs finish", async () => {
  const port = await freePort();
  server = await startWranglerDev({ port, persistTo, vars });
  const kernel = await TrackedKernel.connect({
    url: server.url,
    object: OBJECT,
    kernel: "survivor",
    pageSize: PAGE,
    backoff: { initialMs: 50, maxMs: 400 },
  });
  const expected = new Uint8Array(PAGES * PAGE);
  const write = async (firstPage: number, pages: number, version: number) => {
    const bytes = pattern(firstPage, version, pages * PAGE);
    await kernel.cache.write(firstPage * PAGE, bytes);
    expected.set(bytes, firstPage * PAGE);
  };

  // Before: pages 0–7 in R2 (SYNCHRONOUS), pages 8–15 accepted into the journal (ASYNCHRONOUS).
  await write(0, 8, 1);
  await within(kernel.msync(0, 8 * PAGE, VM_SYNC_SYNCHRONOUS).done, 10_000, "msync 0–7");
  await write(8, 8, 1);
  await within(kernel.msync(8 * PAGE, 8 * PAGE, VM_SYNC_ASYNCHRONOUS).done, 10_000, "msync 8–15");

  expect((await new HttpClient(server.url).stat(OBJECT)).journal_pages).toBe(8);

  // An msync issued just before the server goes down, and one issued while it is down.
  await write(16, 4, 2);
  kernel.msync(16 * PAGE, 4 * PAGE, VM_SYNC_SYNCHRONOUS);
  await server.stop();
  await waitFor(() => !kernel.connection.connected, "the kernel to notice the outage");
  await write(20, 4, 2);
  await write(2, 1, 3); // rewrites a page already in R2
  kernel.msync(0, PAGES * PAGE, VM_SYNC_SYNCHRONOUS);
  const faultDuringOutage = kernel.cache.read((PAGES + 8) * PAGE, PAGE); // never written
  expect(kernel.events.length).toBeLessThan(kernel.msyncs.length);

  server = await startWranglerDev({ port, persistTo, vars });
  // No help from the test: the client's own backoff finds the server again.
  await within(kernel.settled(), 30_000, "the msyncs issued before and during the outage");
  expect(kernel.readyCount).toBeGreaterThanOrEqual(2);
  kernel.expectEachCompletionOnce();
  expect(await within(faultDuringOutage, 10_000, "the fault")).toEqual(new Uint8Array(PAGE));

  const http = new HttpClient(server.url);
  expect(firstDifference(await http.read(OBJECT, 0, PAGES * PAGE), expected)).toBe(-1);
  const status = await http.stat(OBJECT);
  expect(status).toMatchObject({ pages: PAGES, syncs: 0, journal_pages: 0 });
  expect(status.kernels.find((k) => k.kernel === "survivor")?.last_id).toBe(
    kernel.lastStateChangingId(),
  );

  // A kernel that comes fresh after the restart reads the same bytes through its own cache.
  const reader = new PageCache(
    await KernelConnection.connect({ url: server.url, object: OBJECT, kernel: "reader" }),
  );
  expect(firstDifference(await reader.read(0, PAGES * PAGE), expected)).toBe(-1);
  reader.connection.close();
  kernel.close();
});
