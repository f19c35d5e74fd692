/**
 * The HTTP operations of docs/protocol.md §9 as typed calls, for tools and scripts that need no
 * control socket (the CLI's `get`, `stat`, `syncs`, `rm`). Browser-safe: only `fetch`. Paths come
 * from schema/http-paths.ts and answer types from the API's definition (schema/http-api.ts), as
 * types only, so zod stays out of the client bundle.
 */
import { DIRECTORY_PATH, HTTP_PATHS, objectPath, type KernReturn } from "../schema";
import type {
  DeleteResultBody,
  ObjectListBody,
  ObjectStatusBody,
  OutstandingSyncBody,
  SetSizeResultBody,
  SynchronizeCompletedBody,
  WriteResultBody,
} from "../schema/http-api";
import { KernReturnError } from "./errors";

/** The answer of `GET /v1/objects/{name}`. */
export type ObjectStatus = ObjectStatusBody;

/** The answer of `PATCH /v1/objects/{name}` (docs/protocol.md §13). */
export type SetSizeResult = SetSizeResultBody;

/** One entry of `GET /v1/objects/{name}/syncs`. */
export type OutstandingSync = OutstandingSyncBody;

/** One page of `GET /v1/objects`: the objects, and the cursor of the next page (null: the end). */
export type ObjectList = ObjectListBody;

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

  /**
   * One page of the directory (`GET /v1/objects`): the objects whose names start with `prefix`
   * and the token covers, by name; pass the answer's `cursor` for the next page.
   *
   * @example for (let page = await http.list("tenant-a."); ; ) { ...; if (!page.cursor) break; page = await http.list("tenant-a.", { cursor: page.cursor }); }
   */
  list(
    prefix = "",
    { cursor, limit }: { cursor?: string; limit?: number } = {},
  ): Promise<ObjectList> {
    const query = Object.entries({ prefix: prefix || undefined, cursor, limit })
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${encodeURIComponent(value!)}`);
    const path = DIRECTORY_PATH.slice(1);
    return this.json(query.length > 0 ? `${path}?${query.join("&")}` : path);
  }

  stat(object: string): Promise<ObjectStatus> {
    return this.json(objectPath(HTTP_PATHS.object, object));
  }

  async syncs(object: string): Promise<OutstandingSync[]> {
    const body = await this.json<{ syncs: OutstandingSync[] }>(
      objectPath(HTTP_PATHS.syncs, object),
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
      const response = await this.call(objectPath(HTTP_PATHS.pages, object, { offset, length }));
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
  ): Promise<WriteResultBody> {
    const query = { offset, page_size: pageSize || undefined };
    return this.json(objectPath(HTTP_PATHS.pages, object, query), {
      method: "PUT",
      body: bytes as Uint8Array<ArrayBuffer>,
    });
  }

  synchronize(
    object: string,
    offset: number,
    length: number,
    syncFlags: number,
  ): Promise<SynchronizeCompletedBody> {
    return this.json(objectPath(HTTP_PATHS.synchronize, object), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ offset, length, sync_flags: syncFlags }),
    });
  }

  /**
   * Sets the object's size in bytes (docs/protocol.md §13), as kernel `http`: a shrink drops the
   * pages past it. `pageSize` fixes a fresh object's page size, as for `write`.
   *
   * @example await http.setSize("db", 8192);
   */
  setSize(object: string, size: number, pageSize?: number): Promise<SetSizeResult> {
    const query = { page_size: pageSize || undefined };
    return this.json(objectPath(HTTP_PATHS.object, object, query), {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ size }),
    });
  }

  remove(object: string): Promise<DeleteResultBody> {
    return this.json(objectPath(HTTP_PATHS.object, object), { method: "DELETE" });
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
