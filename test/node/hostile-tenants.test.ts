// Hostile tenants against one object at once, as deployed (authentication on, real tokens, the
// real Worker on loopback): a reader floods inits under ever new kernel ids, data_unlocks it never
// reports received, and bad frames from socket after socket; a writer fires INVALIDATE
// synchronizes over HTTP and abandons them. Meanwhile an honest kernel writes and msyncs
// SYNCHRONOUS, and an honest HTTP caller synchronizes. Every honest msync must complete, each
// within HONEST_MSYNC_BOUND_MS, the honest HTTP synchronize must succeed, and every byte the
// honest kernel wrote must read back (docs/security.md, "Hostile tenants").
import type { TestHarness } from "wrangler";
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpClient, KernelConnection, PageCache, VM_SYNC_SYNCHRONOUS } from "../../client";
import { VM_SYNC_INVALIDATE, signToken, type Right } from "../../schema";
import { startAuthHarness } from "./harness";

const AUTH_SECRET = "hostile-tenants-secret";
const OBJECT = "hostile-shared";
const PAGE = 4096;
const HONEST_MSYNCS = 40;
/** What one honest SYNCHRONOUS msync of a page may take while the attack runs. */
const HONEST_MSYNC_BOUND_MS = 5_000;

let server: TestHarness;
let url: string;
beforeAll(async () => {
  ({ server, url } = await startAuthHarness(AUTH_SECRET, {
    FLUSH_DELAY_MS: "300",
    LOCK_TIMEOUT_MS: "2000",
  }));
}, 60_000);
afterAll(() => server?.close());

function token(rights: Right[]): Promise<string> {
  return signToken(AUTH_SECRET, {
    object: OBJECT,
    rights,
    exp: Math.floor(Date.now() / 1000) + 600,
  });
}

/** A raw control socket under `kernel`, as a hostile client would open it. */
function rawSocket(kernel: string, accessToken: string): Promise<WebSocket | null> {
  const ws = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/objects/${OBJECT}/control?kernel=${kernel}&access_token=${accessToken}`,
  );
  return new Promise((resolve) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = () => resolve(null); // refused (429 once its kernel id ran out of errors)
  });
}

/** The reader's attack: new kernel ids, unreceived unlocks, bad frames, until `stop()`. */
const figures = { inits: 0, unlocks: 0, badFrames: 0, refusedSockets: 0, abandoned: 0 };

async function readerFlood(readToken: string, running: () => boolean) {
  for (let round = 0; running(); round++) {
    const ws = await rawSocket(`reader-${round}`, readToken);
    if (!ws) {
      // Refused (its token ran out of errors). A flood of requests as such is for the platform's
      // rate limiting to stop (docs/security.md, what is not protected): this attacker retries
      // every 50 ms.
      figures.refusedSockets++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    ws.send(
      JSON.stringify({ type: "memory_object_init", id: 1, page_size: PAGE, received_mid: 0 }),
    );
    figures.inits++;
    for (let i = 0; i < 50; i++) {
      const unlock = { type: "memory_object_data_unlock", id: 2 + i, offset: 0, length: PAGE };
      ws.send(JSON.stringify({ ...unlock, desired_access: 1 }));
      ws.send("{not json");
      figures.unlocks++;
      figures.badFrames++;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    ws.close();
  }
}

/** The writer's attack: INVALIDATE synchronizes over HTTP, each abandoned 5 ms after it is sent. */
async function writerAbandons(writeToken: string, running: () => boolean) {
  while (running()) {
    const batch = Array.from({ length: 20 }, async () => {
      const abort = new AbortController();
      const request = fetch(`${url}/v1/objects/${OBJECT}/synchronize`, {
        method: "POST",
        headers: { authorization: `Bearer ${writeToken}` },
        body: JSON.stringify({ offset: 0, length: 64 * PAGE, sync_flags: VM_SYNC_INVALIDATE }),
        signal: abort.signal,
      }).catch(() => null);
      setTimeout(() => abort.abort(), 5);
      await request;
      figures.abandoned++;
    });
    await Promise.all(batch);
    // About 100 a second: past the 256 outstanding of one caller within seconds, as in the
    // issue's report; a faster flood of requests is for rate limiting (docs/security.md).
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

it("an honest kernel's msyncs all complete in bounded time while a reader and a writer attack", async () => {
  const [readToken, writeToken, honestToken] = await Promise.all([
    token(["read"]),
    token(["read", "write"]),
    token(["read", "write"]),
  ]);
  const honest = await KernelConnection.connect({
    url,
    object: OBJECT,
    kernel: "honest",
    token: honestToken,
    pageSize: PAGE,
  });
  const cache = new PageCache(honest);

  let attacking = true;
  const running = () => attacking;
  const reader = readerFlood(readToken, running);
  const writer = writerAbandons(writeToken, running);

  const latencies: number[] = [];
  const expected = new Uint8Array(HONEST_MSYNCS * PAGE);
  for (let i = 0; i < HONEST_MSYNCS; i++) {
    const bytes = new Uint8Array(PAGE).fill((i * 13 + 1) % 251);
    expected.set(bytes, i * PAGE);
    await cache.write(i * PAGE, bytes);
    const started = Date.now();
    const completion = await cache.msync(i * PAGE, PAGE, VM_SYNC_SYNCHRONOUS);
    latencies.push(Date.now() - started);
    expect(completion).toMatchObject({ offset: i * PAGE, length: PAGE });
  }
  // An honest HTTP caller, with its own token, is not refused for the writer's abandoned ones.
  const http = new HttpClient(url, honestToken);
  const sync = await http.synchronize(OBJECT, 0, HONEST_MSYNCS * PAGE, VM_SYNC_SYNCHRONOUS);
  expect(sync.type).toBe("memory_object_synchronize_completed");

  // The attack goes on until it has done what it came for, however fast the honest side was:
  // the reader's token cut off by its error budget, more than one caller's 256 abandoned.
  const deadline = Date.now() + 60_000;
  while ((figures.refusedSockets === 0 || figures.abandoned <= 300) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  attacking = false;
  await Promise.all([reader, writer]);
  const stored = await http.read(OBJECT, 0, HONEST_MSYNCS * PAGE);
  expect(Buffer.from(stored).equals(Buffer.from(expected))).toBe(true);
  // Abandoned requests go as their disconnects reach the object: give the last ones a moment.
  let status = await http.stat(OBJECT);
  for (let tries = 0; status.syncs > 0 && tries < 50; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = await http.stat(OBJECT);
  }
  console.log(
    `[hostile] honest msyncs: ${HONEST_MSYNCS}, max ${Math.max(...latencies)} ms, median ` +
      `${[...latencies].sort((a, b) => a - b)[latencies.length >> 1]} ms; attack: ` +
      `${JSON.stringify(figures)} (abandoned: the writer's INVALIDATE synchronizes); ` +
      `object: ${status.kernels.length} kernels, ${status.syncs} outstanding synchronizes`,
  );
  expect(Math.max(...latencies)).toBeLessThan(HONEST_MSYNC_BOUND_MS);
  // The attack really ran, and the reader's token was cut off by its error budget (400 a minute).
  expect(figures.inits).toBeGreaterThanOrEqual(4);
  expect(figures.refusedSockets).toBeGreaterThan(0);
  expect(figures.abandoned).toBeGreaterThan(300); // more than one caller's 256 outstanding
  // Nothing the writer abandoned still holds a slot.
  expect(status.syncs).toBe(0);
  honest.close();
  // Alone about 5 s; in the whole suite the attack's own wait (up to a minute) and the honest
  // side's msyncs share two cores with two other files.
}, 240_000);
