/**
 * The Node side of the baselines in bench/worker.ts: (a) one R2 put over HTTP, (b) a page over a
 * WebSocket into a Durable Object that puts it to R2, (c) a WebSocket echo through a Durable
 * Object. Raw sockets, no client library: the least a caller can do.
 */
import { encodeFrame } from "../schema";

/**
 * (a) One R2 put of `body`, fed over HTTP; resolves when the Worker answered after the put, with
 * the key it was put under.
 */
export async function putOnce(url: string, body: Uint8Array<ArrayBuffer>): Promise<string> {
  const response = await fetch(`${url}/bench/r2-put`, { method: "PUT", body });
  const answer = (await response.json()) as { size: number; key: string };
  if (!response.ok || answer.size !== body.byteLength) {
    throw new Error(`bench r2-put answered ${response.status} ${JSON.stringify(answer)}`);
  }
  return answer.key;
}

/** A range of what `putOnce` put under `key`, read from R2 by the bench Worker. */
export async function getRange(
  url: string,
  key: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const query = new URLSearchParams({ key, offset: String(offset), length: String(length) });
  const response = await fetch(`${url}/bench/r2-get?${query}`);
  if (!response.ok) throw new Error(`bench r2-get answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** A socket to the bench Durable Object whose messages are answered by `id`. */
export class BenchSocket {
  private nextId = 1;
  private readonly waiting = new Map<number, () => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.addEventListener("message", (event) => {
      const { id } = JSON.parse(String(event.data)) as { id: number };
      const done = this.waiting.get(id);
      this.waiting.delete(id);
      done?.();
    });
  }

  /** `mode` "page" is baseline (b), "echo" is (c), "floor" is (d) (its ack carries no `id`). */
  static async open(
    url: string,
    mode: "page" | "echo" | "floor",
    object: string,
  ): Promise<BenchSocket> {
    const socket = new WebSocket(
      `${url.replace(/^http/, "ws")}/bench/${mode}-socket?object=${encodeURIComponent(object)}`,
    );
    socket.binaryType = "arraybuffer";
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`bench ${mode} socket failed`)), {
        once: true,
      });
    });
    return new BenchSocket(socket);
  }

  /** (b) One page as a data_return frame; resolves once it is in R2. */
  putPage(offset: number, page: Uint8Array): Promise<void> {
    const id = this.nextId++;
    const header = {
      type: "memory_object_data_return",
      id,
      offset,
      length: page.byteLength,
      dirty: true,
      kernel_copy: false,
    };
    return this.send(id, encodeFrame(header, page));
  }

  /** (c), (d) A message shaped like a synchronize; resolves when it comes back (is completed). */
  echo(offset: number, length: number, syncFlags: number): Promise<void> {
    const id = this.nextId++;
    const message = {
      type: "memory_object_synchronize",
      id,
      offset,
      length,
      sync_flags: syncFlags,
    };
    return this.send(id, JSON.stringify(message));
  }

  close(): void {
    this.socket.close();
  }

  private send(id: number, frame: string | Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.socket.send(frame);
    });
  }
}
