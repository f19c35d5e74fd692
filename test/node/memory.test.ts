// Memory of large requests, measured in the real isolate: two concurrent 64 MiB PUTs, then two
// concurrent 64 MiB GETs, on `wrangler dev`. The platform gives an isolate 128 MB, counting its
// JavaScript heap and the ArrayBuffers it holds; bodies stream through spools and pieces under
// the isolate's byte budget (durable/byte-budget.ts), so the isolate's peak must stay far below
// the 256 MiB that pass through it. The isolate is sampled through the inspector
// (`Runtime.getHeapUsage`: heap used plus ArrayBuffer backing stores).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { startWranglerDev, type DevServer } from "./harness";

const MiB = 1024 * 1024;
const BODY = 64 * MiB;
/** Half the platform's 128 MB per isolate: room for everything else an isolate runs. */
const MAX_ISOLATE_BYTES = 96 * MiB;

const persistTo = mkdtempSync(join(tmpdir(), "edgepager-memory-"));
let server: DevServer | null = null;
afterAll(async () => {
  await server?.stop();
  rmSync(persistTo, { recursive: true, force: true });
});

/** Polls the isolate's memory through the inspector until stopped; resolves with the peak. */
async function sampleIsolate(
  inspectorPort: number,
): Promise<{ stop(): Promise<{ peak: number; samples: number }> }> {
  const [target] = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  // The inspector proxy admits only local origins.
  const socket = new WebSocket(target!.webSocketDebuggerUrl, {
    headers: { Origin: "http://localhost" },
  } as unknown as string[]);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("the inspector refused the connection"));
  });
  let peak = 0;
  let samples = 0;
  let running = true;
  socket.onmessage = (event) => {
    const { result } = JSON.parse(String(event.data)) as {
      result?: { usedSize?: number; backingStorageSize?: number };
    };
    // The proxy may answer a call itself (an empty result) while it attaches to the isolate.
    if (result?.usedSize === undefined || result.backingStorageSize === undefined) return;
    samples++;
    peak = Math.max(peak, result.usedSize + result.backingStorageSize);
  };
  const poll = (async () => {
    for (let id = 1; running; id++) {
      // Collected first: garbage not yet collected is not memory the isolate needs.
      socket.send(JSON.stringify({ id: -id, method: "HeapProfiler.collectGarbage" }));
      socket.send(JSON.stringify({ id, method: "Runtime.getHeapUsage" }));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    async stop() {
      running = false;
      await poll;
      await new Promise((resolve) => setTimeout(resolve, 50)); // the last answers
      socket.close();
      return { peak, samples };
    },
  };
}

async function put(url: string, object: string, body: Uint8Array<ArrayBuffer>): Promise<void> {
  const response = await fetch(`${url}/v1/objects/${object}/pages?offset=0`, {
    method: "PUT",
    body,
  });
  expect(response.status, await response.clone().text()).toBe(200);
  await response.arrayBuffer();
}

/** Reads a range and drops it as it streams, returning how many bytes arrived. */
async function get(url: string, object: string, length: number): Promise<number> {
  const response = await fetch(`${url}/v1/objects/${object}/pages?offset=0&length=${length}`);
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  let bytes = 0;
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    bytes += next.value.byteLength;
  }
  return bytes;
}

it("two concurrent 64 MiB PUTs, then two 64 MiB GETs, keep the isolate under 96 MiB", async () => {
  server = await startWranglerDev({ persistTo });
  // Warm up: code compiled, objects and tables made.
  for (const object of ["memory-a", "memory-b"]) {
    await put(server.url, object, new Uint8Array(MiB).fill(1));
    expect(await get(server.url, object, MiB)).toBe(MiB);
  }
  const sampler = await sampleIsolate(server.inspectorPort);
  const a = new Uint8Array(BODY).fill(0xa5);
  const b = new Uint8Array(BODY).fill(0x5a);
  await Promise.all([put(server.url, "memory-a", a), put(server.url, "memory-b", b)]);
  const reads = await Promise.all([
    get(server.url, "memory-a", BODY),
    get(server.url, "memory-b", BODY),
  ]);
  expect(reads).toEqual([BODY, BODY]);
  const { peak, samples } = await sampler.stop();
  console.log(
    `[memory] isolate peak ${(peak / MiB).toFixed(1)} MiB (heap used + ArrayBuffers, ` +
      `${samples} samples) while 2 x 64 MiB PUTs and 2 x 64 MiB GETs passed`,
  );
  expect(samples).toBeGreaterThan(20);
  expect(peak).toBeLessThan(MAX_ISOLATE_BYTES);
});
