/**
 * Capability tokens, in the spirit of Mach port rights: a signed grant of rights (`read`, `write`,
 * `admin`) over the objects whose names match a pattern (an exact name, or a prefix ending in
 * `*`), until an expiry. Format: `ep1.<payload>.<signature>`, both base64url; the signature is
 * HMAC-SHA256 over `ep1.<payload>` with the deployment's `AUTH_SECRET` (Web Crypto, so the same
 * code signs in Node and verifies in the Worker).
 */

export type Right = "read" | "write" | "admin";
export const RIGHTS: readonly Right[] = ["read", "write", "admin"];

export interface Grant {
  /** An object name, or a prefix followed by `*` (`*` alone: every object). */
  object: string;
  rights: Right[];
  /** Expiry, in seconds since the epoch. */
  exp: number;
}

const VERSION = "ep1";
const encoder = new TextEncoder();

/**
 * @example const token = await signToken(secret, { object: "tenant-a.*", rights: ["read"], exp });
 */
export async function signToken(secret: string, grant: Grant): Promise<string> {
  const payload = base64url(encoder.encode(JSON.stringify(grant)));
  const signature = await hmac(secret, `${VERSION}.${payload}`);
  return `${VERSION}.${payload}.${base64url(signature)}`;
}

/** Why a token was refused; the Worker turns it into 401. */
export class TokenError extends Error {}

/**
 * Checks the signature (in constant time, by Web Crypto's verify) and the expiry, and returns
 * the grant. Throws `TokenError` naming what is wrong.
 */
export async function verifyToken(
  secret: string,
  token: string,
  nowSeconds: number,
): Promise<Grant> {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== VERSION) {
    throw new TokenError(`token must have the form ${VERSION}.<payload>.<signature>`);
  }
  const [, payload, signature] = parts as [string, string, string];
  // One text per token: a part that is not canonical base64url is refused before anything else,
  // so no second spelling of a signature (or a payload) verifies (docs/security.md).
  const signatureBytes = fromBase64url(signature, "signature");
  const payloadBytes = fromBase64url(payload, "payload");
  const key = await hmacKey(secret, ["verify"]);
  let valid = false;
  try {
    valid = await crypto.subtle.verify(
      "HMAC",
      key,
      signatureBytes,
      encoder.encode(`${VERSION}.${payload}`),
    );
  } catch {
    valid = false;
  }
  if (!valid) throw new TokenError("token signature is not valid");
  let grant: unknown;
  try {
    grant = JSON.parse(new TextDecoder().decode(payloadBytes));
  } catch {
    throw new TokenError("token payload is not valid JSON");
  }
  if (!isGrant(grant)) throw new TokenError("token payload must be {object, rights, exp}");
  if (grant.exp <= nowSeconds) throw new TokenError("token has expired");
  return grant;
}

/** Whether the grant covers this object name. */
export function grantCovers(grant: Grant, objectName: string): boolean {
  return grant.object.endsWith("*")
    ? objectName.startsWith(grant.object.slice(0, -1))
    : objectName === grant.object;
}

/** Parses `read,write` into rights, naming any unknown one. */
export function parseRights(text: string): Right[] {
  const rights = text
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  const unknown = rights.filter((r) => !(RIGHTS as string[]).includes(r));
  if (unknown.length > 0 || rights.length === 0) {
    throw new TokenError(
      `rights must be a comma-separated list of ${RIGHTS.join(", ")}; got "${text}"`,
    );
  }
  return rights as Right[];
}

function isGrant(value: unknown): value is Grant {
  const grant = value as Grant;
  return (
    typeof grant === "object" &&
    grant !== null &&
    typeof grant.object === "string" &&
    grant.object.length > 0 &&
    Array.isArray(grant.rights) &&
    grant.rights.every((r) => (RIGHTS as string[]).includes(r)) &&
    typeof grant.exp === "number" &&
    Number.isFinite(grant.exp)
  );
}

async function hmac(secret: string, message: string): Promise<Uint8Array> {
  const key = await hmacKey(secret, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}

function hmacKey(secret: string, usages: ("sign" | "verify")[]): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    usages,
  );
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Decodes one part of a token, accepting only the text `base64url` makes of the bytes: no
 * padding, no other alphabet, and the unused low bits of the last character zero (decoders drop
 * them, so otherwise four texts would give the same bytes).
 */
function fromBase64url(text: string, part: "payload" | "signature"): Uint8Array<ArrayBuffer> {
  const refused = () =>
    new TokenError(`token ${part} must be canonical base64url (unpadded, unused bits zero)`);
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw refused();
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (base64url(bytes) !== text) throw refused();
  return bytes;
}
