/**
 * `edgepager smoke` (npm run smoke) as a child process against the real Worker on loopback: it
 * passes on a working service and leaves nothing behind; it fails, with the step, a clear message
 * and a non-zero exit, where no service listens, where the token does not let it in, and where
 * the deployment has no AUTH_SECRET.
 */
import { createTestHarness, type TestHarness } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpClient } from "../../client/http";
import { signToken } from "../../schema";
import { buildCliIfStale, cliEnv, runCli, type CliResult } from "./cli-process";
import { freePort, startHarness, type Harness } from "./harness";

const STEPS = ["service", "put", "synchronize", "read", "stat", "delete"];
const AUTH_SECRET = "smoke-test-secret";

const smoke = (...args: string[]) => runCli(["smoke", ...args], cliEnv());
const out = (result: CliResult) => result.stdout.toString();
/** `  ok  put  25 ms  …` → ["ok", "put"] for each step line. */
const statuses = (result: CliResult) =>
  out(result)
    .split("\n")
    .filter((line) => line.startsWith("  "))
    .map((line) => line.trim().split(/\s+/).slice(0, 2));

beforeAll(() => buildCliIfStale());

describe("against a service without authentication (local development)", () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  }, 60_000);
  afterAll(() => harness?.close());

  it("passes every step, reports each with its time, and deletes its object", async () => {
    const result = await smoke("--url", harness.url);
    expect(result.code, out(result) + result.stderr).toBe(0);
    expect(result.stderr).toBe("");
    expect(statuses(result)).toEqual(STEPS.map((step) => ["ok", step]));
    expect(out(result)).toMatch(/^ {2}ok +synchronize +\d+ ms {2}POST synchronize .*sync_flags 2/m);
    expect(out(result)).toMatch(/^passed: 6 of 6 steps ok, \d+\.\d\d s$/m);
    const object = /object (smoke-[a-z0-9]+-[0-9a-f]{8})$/m.exec(out(result))?.[1];
    expect(object).toBeDefined();
    const status = await new HttpClient(harness.url).stat(object!);
    expect(status).toMatchObject({ pages: 0, bytes: 0 });
  });

  it("prints one JSON report with --json, and takes --pages and --prefix", async () => {
    const result = await smoke("--url", harness.url, "--json", "--pages", "9", "--prefix", "ci.");
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(out(result));
    expect(report).toMatchObject({ url: harness.url.replace(/\/$/, ""), passed: true });
    expect(report.object).toMatch(/^ci\./);
    expect(report.steps.map((step: { step: string }) => step.step)).toEqual(STEPS);
    expect(report.steps[1].detail).toContain("PUT 9 pages of 4096 bytes");
  });
});

it("fails at the first step with exit 2 where nothing listens, and writes nothing", async () => {
  const url = `http://127.0.0.1:${await freePort()}`;
  const result = await smoke("--url", url);
  expect(result.code).toBe(2);
  expect(statuses(result)).toEqual([
    ["FAILED", "service"],
    ...STEPS.slice(1).map((step) => ["skipped", step]),
  ]);
  expect(result.stderr).toBe(
    `edgepager: smoke test failed at service: cannot reach the edgepager service at ${url}: ` +
      "connection refused (ECONNREFUSED)\n",
  );
  expect(out(result)).toMatch(/^failed at service: 0 of 6 steps ok/m);
});

it("refuses bad options with exit 64 before any request", async () => {
  for (const args of [
    ["--pages", "0"],
    ["--pages", "1025"],
    ["--prefix", "a/b"],
  ]) {
    const result = await smoke("--url", "http://127.0.0.1:9", ...args);
    expect(result.code, args.join(" ")).toBe(64);
  }
});

describe("against a service with authentication on (as deployed)", () => {
  let server: TestHarness;
  let url: string;
  beforeAll(async () => {
    server = createTestHarness({
      workers: [
        { configPath: "./wrangler.toml", vars: { REQUIRE_AUTH: "true" }, secrets: { AUTH_SECRET } },
      ],
    });
    url = (await server.listen()).url.toString().replace(/\/$/, "");
  }, 60_000);
  afterAll(() => server?.close());

  it("passes with a token minted by `edgepager token` for smoke-*", async () => {
    const minted = await runCli(
      ["token", "--object", "smoke-*", "--rights", "read,write,admin", "--secret", AUTH_SECRET],
      cliEnv(),
    );
    expect(minted.code, minted.stderr).toBe(0);
    const result = await smoke("--url", url, "--token", out(minted).trim());
    expect(result.code, out(result) + result.stderr).toBe(0);
    expect(statuses(result)).toEqual(STEPS.map((step) => ["ok", step]));
  });

  it("fails at put with exit 3 and says why, without a token or with a wrong one", async () => {
    const wrong = await token("another-secret", ["read", "write", "admin"]);
    for (const args of [[], ["--token", wrong]]) {
      const result = await smoke("--url", url, ...args);
      expect(result.code, out(result)).toBe(3);
      expect(statuses(result)).toEqual([
        ["ok", "service"],
        ["FAILED", "put"],
        ["skipped", "synchronize"],
        ["skipped", "read"],
        ["skipped", "stat"],
        ["FAILED", "delete"], // the clean-up is tried, and refused the same way
      ]);
      expect(result.stderr).toMatch(
        /^edgepager: smoke test failed at put: KERN_PROTECTION_FAILURE: .+ \(unauthorized\)\n$/,
      );
    }
  });

  it("fails at delete with exit 3 when the token lacks admin, after the data checked out", async () => {
    const result = await smoke(
      "--url",
      url,
      "--token",
      await token(AUTH_SECRET, ["read", "write"]),
    );
    expect(result.code).toBe(3);
    expect(statuses(result).map(([status]) => status)).toEqual([
      ...STEPS.slice(0, 5).map(() => "ok"),
      "FAILED",
    ]);
    expect(result.stderr).toMatch(
      /^edgepager: smoke test failed at delete: KERN_PROTECTION_FAILURE/,
    );
  });
});

it("fails at the first step with exit 1 where AUTH_SECRET was never set (production)", async () => {
  const server = createTestHarness({
    workers: [{ configPath: "./wrangler.toml", env: "production" }],
  });
  try {
    const url = (await server.listen()).url.toString().replace(/\/$/, "");
    const result = await smoke("--url", url);
    expect(result.code).toBe(1);
    expect(statuses(result)[0]).toEqual(["FAILED", "service"]);
    expect(result.stderr).toMatch(
      /^edgepager: smoke test failed at service: HTTP 503: .*no AUTH_SECRET.* \(auth_unconfigured\)\n$/,
    );
  } finally {
    await server.close();
  }
}, 60_000);

function token(secret: string, rights: ("read" | "write" | "admin")[]): Promise<string> {
  return signToken(secret, { object: "smoke-*", rights, exp: Math.floor(Date.now() / 1000) + 600 });
}
