/**
 * The HTTP operations of docs/protocol.md §9 as typed calls, for tools and scripts that need no
 * control socket (the CLI's `get`, `stat`, `syncs`, `rm`). Browser-safe: only `fetch`.
 */
import type { KernReturn } from "../schema";
import { KernReturnError } from "./errors";

export interface ObjectStatus {
  object: string;
  page_size: number | null;
  max_size: number;
  pages: number;
  bytes: number;
  journal_pages: number;
  seqno: number;
  kernels: { kernel: string; connected: boolean; last_id: number }[];
  syncs: number;
}

export interface OutstandingSync {
  kernel: string;
  id: number;
  seqno: number;
  offset: number;
  length: number;
  sync_flags: number;
  since: string;
}

/** Halves of a fragmented read stay multiples of this (a few pages of any size). */
const SMALLEST_SPLIT = 64 * 1024;

export class HttpClient {
  /**
   * @example const status = await new HttpClient("http://127.0.0.1:8787").stat("db");
   */
  constructor(
    readonly url: string,
    readonly token?: string,
  ) {}

  stat(object: string): Promise<ObjectStatus> {
    return this.json(`v1/objects/${encodeURIComponent(object)}`);
  }

  async syncs(object: string): Promise<OutstandingSync[]> {
    const body = await this.json<{ syncs: OutstandingSync[] }>(
      `v1/objects/${encodeURIComponent(object)}/syncs`,
    );
    return body.syncs;
  }

  /**
   * Reads a byte range (at most 64 MiB). A range the object refuses as too fragmented for one
   * request (`too_fragmented`: its pages lie in more segments than one request may read from R2)
   * is read in two halves, and they in halves again if need be, so every range reads; the halves
   * are then separate reads, each as of its own seqno.
   *
   * @example const bytes = await http.read("db", 0, 1 << 20);
   */
  async read(object: string, offset: number, length: number): Promise<Uint8Array> {
    try {
      const response = await this.call(
        `v1/objects/${encodeURIComponent(object)}/pages?offset=${offset}&length=${length}`,
      );
      return new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      if (!(error instanceof KernReturnError) || error.code !== "too_fragmented") throw error;
      if (length <= SMALLEST_SPLIT) throw error;
      const half = Math.ceil(length / 2 / SMALLEST_SPLIT) * SMALLEST_SPLIT;
      const bytes = new Uint8Array(length);
      bytes.set(await this.read(object, offset, half), 0);
      bytes.set(await this.read(object, offset + half, length - half), half);
      return bytes;
    }
  }

  write(
    object: string,
    offset: number,
    bytes: Uint8Array,
    pageSize?: number,
  ): Promise<{ offset: number; length: number; seqno: number }> {
    const query = `offset=${offset}${pageSize ? `&page_size=${pageSize}` : ""}`;
    return this.json(`v1/objects/${encodeURIComponent(object)}/pages?${query}`, {
      method: "PUT",
      body: bytes as Uint8Array<ArrayBuffer>,
    });
  }

  synchronize(
    object: string,
    offset: number,
    length: number,
    syncFlags: number,
  ): Promise<{ type: string; offset: number; length: number; seqno: number }> {
    return this.json(`v1/objects/${encodeURIComponent(object)}/synchronize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ offset, length, sync_flags: syncFlags }),
    });
  }

  remove(object: string): Promise<{ object: string; deleted: boolean }> {
    return this.json(`v1/objects/${encodeURIComponent(object)}`, { method: "DELETE" });
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.call(path, init)).json()) as T;
  }

  /** Makes the request; a JSON error body becomes a `KernReturnError`. */
  private async call(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.token) headers.set("authorization", `Bearer ${this.token}`);
    const base = this.url.endsWith("/") ? this.url : `${this.url}/`;
    const response = await fetch(new URL(path, base), { ...init, headers });
    if (response.ok) return response;
    const text = await response.text();
    let error: { code?: string; kern_return?: KernReturn; message?: string } = {};
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
    } catch {
      // Not our JSON error body (a proxy, say): report the status and text.
    }
    throw new KernReturnError(
      error.kern_return ?? 5,
      error.code ?? `http_${response.status}`,
      error.message ?? `HTTP ${response.status}: ${text.slice(0, 200)}`,
    );
  }
}
