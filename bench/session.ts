/** What every workload does around its timed part: data to write, a kernel to open and to end. */
import { HttpClient, KernelConnection } from "../client";
import { PAGE } from "./settings";

/** Bytes where page i is filled with (seed + i) % 251, so a misplaced page shows. */
export function pattern(bytes: number, seed = 0): Uint8Array<ArrayBuffer> {
  const data = new Uint8Array(bytes);
  for (let i = 0; i * PAGE < bytes; i++) data.fill((seed + i) % 251, i * PAGE, (i + 1) * PAGE);
  return data;
}

/**
 * A kernel's connection; `batch: false` for the rows that measure one frame per message,
 * `coherent: true` for those on a coherent object (docs/protocol.md §10), `WebSocket` to count
 * frames.
 */
export async function connect(
  url: string,
  object: string,
  kernel = "bench",
  {
    batch = true,
    coherent,
    WebSocket,
  }: { batch?: boolean; coherent?: boolean; WebSocket?: typeof globalThis.WebSocket } = {},
): Promise<KernelConnection> {
  return KernelConnection.connect({
    url,
    object,
    kernel,
    batch,
    connectTimeoutMs: 30_000,
    ...(coherent !== undefined && { coherent }),
    ...(WebSocket && { WebSocket }),
  });
}

/** Ends the kernel (the manager forgets it) and, unless kept, deletes the object's pages. */
export async function finish(
  url: string,
  connection: KernelConnection,
  object: string,
  keep = false,
) {
  await connection.terminate().catch(() => connection.close());
  if (!keep) await new HttpClient(url).remove(object);
}
