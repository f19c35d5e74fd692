/**
 * `callerOf(c)`: who is asking, as the Durable Object counts HTTP synchronize requests against a
 * budget per caller (docs/security.md). With authentication on, the token: a hash of the grant
 * it carries, which names the token (a grant signs to one token; two tokens differ only by what
 * they grant). With it off, the client's address as Cloudflare reports it (`CF-Connecting-IP`,
 * which a client cannot set through Cloudflare), else one caller, `anonymous`, shared.
 */
import type { Context } from "hono";
import type { AppEnv } from "./app-env";

export async function callerOf(c: Context<AppEnv>): Promise<string> {
  if (c.env.AUTH_SECRET) {
    const { object, rights, exp } = c.get("grant");
    return `token:${await digest(JSON.stringify([object, rights, exp]))}`;
  }
  const address = c.req.header("cf-connecting-ip");
  return address ? `ip:${address.slice(0, 64)}` : "anonymous";
}

/** The first 128 bits of SHA-256, in hex: enough to tell tokens apart, short in a SQL row. */
async function digest(text: string): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(hash).subarray(0, 16), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}
