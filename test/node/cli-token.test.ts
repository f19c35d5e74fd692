// `edgepager token` (npm run token): mints a token the service accepts, from --secret, the
// environment, or .dev.vars; bad arguments are usage errors.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { verifyToken } from "../../schema";
import { CLI, buildCliIfStale, cliEnv, runCli } from "./cli-process";
import { spawnSync } from "node:child_process";

beforeAll(() => buildCliIfStale());

const now = () => Math.floor(Date.now() / 1000);

describe("edgepager token", () => {
  it("signs the grant it is asked for, verifiable with the same secret", async () => {
    const result = await runCli([
      "token",
      "--object",
      "tenant-a.*",
      "--rights",
      "read,write",
      "--ttl",
      "2h",
      "--secret",
      "s",
    ]);
    expect(result.code).toBe(0);
    const token = result.stdout.toString().trim();
    const grant = await verifyToken("s", token, now());
    expect(grant).toMatchObject({ object: "tenant-a.*", rights: ["read", "write"] });
    expect(grant.exp - now()).toBeGreaterThan(7100);
    expect(grant.exp - now()).toBeLessThanOrEqual(7200);
    await expect(verifyToken("other", token, now())).rejects.toThrow();
  });

  it("takes the secret from AUTH_SECRET, or from .dev.vars in the current directory", async () => {
    const fromEnv = await runCli(
      ["token", "--object", "db", "--json"],
      cliEnv({ AUTH_SECRET: "env-secret" }),
    );
    const minted = JSON.parse(fromEnv.stdout.toString());
    expect(minted).toMatchObject({ object: "db", rights: ["read"] });
    expect(await verifyToken("env-secret", minted.token, now())).toMatchObject({ object: "db" });

    const dir = mkdtempSync(join(tmpdir(), "edgepager-devvars-"));
    writeFileSync(join(dir, ".dev.vars"), 'OTHER=1\nAUTH_SECRET="file-secret"\n');
    const env = cliEnv();
    delete env.AUTH_SECRET;
    const fromFile = spawnSync(process.execPath, [CLI, "token", "--object", "db"], {
      cwd: dir,
      env,
    });
    expect(fromFile.status).toBe(0);
    expect(await verifyToken("file-secret", fromFile.stdout.toString().trim(), now())).toBeTruthy();
  });

  it("refuses bad arguments and a missing secret with exit 64", async () => {
    for (const args of [
      ["token", "--object", "db", "--rights", "read,root", "--secret", "s"],
      ["token", "--object", "db", "--ttl", "5q", "--secret", "s"],
      ["token", "--object", "a*b", "--secret", "s"],
      ["token", "--secret", "s"],
    ]) {
      const result = await runCli(args);
      expect(result.code, args.join(" ")).toBe(64);
    }
    const dir = mkdtempSync(join(tmpdir(), "edgepager-nosecret-"));
    const env = cliEnv();
    delete env.AUTH_SECRET;
    const missing = spawnSync(process.execPath, [CLI, "token", "--object", "db"], {
      cwd: dir,
      env,
    });
    expect(missing.status).toBe(64);
    expect(missing.stderr.toString()).toMatch(/no secret/);
  });
});
