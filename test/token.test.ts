// Capability tokens (schema/token.ts): signed grants that verify only with the same secret,
// untampered, before their expiry.
import { describe, expect, it } from "vitest";
import {
  TokenError,
  grantCovers,
  parseRights,
  signToken,
  verifyToken,
  type Grant,
} from "../schema";

const grant: Grant = { object: "tenant-a.*", rights: ["read", "write"], exp: 2_000_000_000 };

describe("signToken / verifyToken", () => {
  it("round-trips a grant", async () => {
    const token = await signToken("s3cret", grant);
    expect(token).toMatch(/^ep1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(await verifyToken("s3cret", token, 1_900_000_000)).toEqual(grant);
  });

  it("rejects another secret, a changed payload, a wrong form, and expiry", async () => {
    const token = await signToken("s3cret", grant);
    await expect(verifyToken("other", token, 0)).rejects.toThrow(/signature/);
    const [version, , signature] = token.split(".");
    const forged = btoa(JSON.stringify({ ...grant, rights: ["admin"] })).replace(/=+$/, "");
    await expect(verifyToken("s3cret", `${version}.${forged}.${signature}`, 0)).rejects.toThrow(
      TokenError,
    );
    await expect(verifyToken("s3cret", "ep1.onlytwo", 0)).rejects.toThrow(/form/);
    await expect(verifyToken("s3cret", token.replace("ep1", "ep2"), 0)).rejects.toThrow(/form/);
    await expect(verifyToken("s3cret", token, grant.exp)).rejects.toThrow(/expired/);
  });

  it("accepts one text per token: every other last character of the signature or payload is refused", async () => {
    // base64url of 32 signature bytes ends in a character carrying 2 bits it does not use; a
    // lenient decoder drops them, so 3 other characters would give the same signature.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (const object of ["tenant-a.*", "tenant-ab.*", "tenant-abc.*"]) {
      const token = await signToken("s3cret", { ...grant, object });
      const [version, payload, signature] = token.split(".") as [string, string, string];
      expect(await verifyToken("s3cret", token, 0)).toEqual({ ...grant, object });
      const variants = [
        ...[...alphabet].map((c) => `${version}.${payload}.${signature.slice(0, -1)}${c}`),
        ...[...alphabet].map((c) => `${version}.${payload.slice(0, -1)}${c}.${signature}`),
        `${token}=`,
        `${version}.${payload}=.${signature}`,
      ].filter((variant) => variant !== token);
      for (const variant of variants) {
        await expect(verifyToken("s3cret", variant, 0), variant).rejects.toThrow(TokenError);
      }
    }
    await expect(
      verifyToken("s3cret", `ep1.e30.${"A".repeat(42)}B`, 0),
      "non-zero spare bits",
    ).rejects.toThrow(/signature must be canonical base64url/);
  });

  it("rejects a signed payload that is not a grant", async () => {
    const bad = await signToken("s3cret", { object: "", rights: ["root" as never], exp: 1 });
    await expect(verifyToken("s3cret", bad, 0)).rejects.toThrow(/payload/);
  });
});

describe("grantCovers", () => {
  it("matches an exact name, a prefix with *, or everything", () => {
    expect(grantCovers({ ...grant, object: "db" }, "db")).toBe(true);
    expect(grantCovers({ ...grant, object: "db" }, "db2")).toBe(false);
    expect(grantCovers(grant, "tenant-a.pages")).toBe(true);
    expect(grantCovers(grant, "tenant-b.pages")).toBe(false);
    expect(grantCovers({ ...grant, object: "*" }, "anything")).toBe(true);
  });
});

describe("parseRights", () => {
  it("parses a comma list and names unknown rights", () => {
    expect(parseRights("read, write")).toEqual(["read", "write"]);
    expect(() => parseRights("read,root")).toThrow(/read, write, admin/);
    expect(() => parseRights("")).toThrow(TokenError);
  });
});
