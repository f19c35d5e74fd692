/** HTTP calls to the real Worker, as a user's curl would make them. */
import { exports } from "cloudflare:workers";

export const BASE = "http://edgepager.test";

export function call(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(`${BASE}${path}`, init);
}

export async function putPages(object: string, offset: number, body: Uint8Array, query = "") {
  return call(`/v1/objects/${object}/pages?offset=${offset}${query}`, { method: "PUT", body });
}

export async function readPages(
  object: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const response = await call(`/v1/objects/${object}/pages?offset=${offset}&length=${length}`);
  if (response.status !== 200)
    throw new Error(`read failed: ${response.status} ${await response.text()}`);
  return new Uint8Array(await response.arrayBuffer());
}

export async function synchronize(
  object: string,
  offset: number,
  length: number,
  syncFlags: number,
) {
  return call(`/v1/objects/${object}/synchronize`, {
    method: "POST",
    body: JSON.stringify({ offset, length, sync_flags: syncFlags }),
  });
}

export async function stat(object: string): Promise<Record<string, any>> {
  return (await call(`/v1/objects/${object}`)).json();
}
