/**
 * `npm run dev` as a user runs it, with flags of their own: the port, the state directory and a
 * var, given on the command line, replace the defaults in wrangler.toml's [dev] instead of
 * clashing with them. The smoke command then runs against it, as it would after a deploy.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { HttpClient } from "../../client/http";
import { startServerProcess, type ServerProcess } from "../../tools/server-process";
import { QUIET_ENV, freePort } from "../../tools/wrangler-dev";
import { ROOT, buildCliIfStale, cliEnv, runCli } from "./cli-process";

let server: ServerProcess;
let persistTo: string;

beforeAll(async () => {
  await buildCliIfStale();
  persistTo = mkdtempSync(join(tmpdir(), "edgepager-dev-"));
  const port = await freePort();
  const flags = ["--port", String(port), "--persist-to", persistTo];
  server = await startServerProcess({
    command: "npm",
    args: ["run", "dev", "--", ...flags, "--var", "FLUSH_DELAY_MS:300"],
    url: `http://127.0.0.1:${port}`,
    // CI: no interactive session (wrangler's hotkeys), as when a script runs it.
    env: { ...process.env, ...QUIET_ENV, CI: "1" },
    timeoutMs: 90_000,
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  if (persistTo) rmSync(persistTo, { recursive: true, force: true });
});

it("defaults to 127.0.0.1:8787 in wrangler.toml [dev], with no flags in the script", () => {
  const { dev } = unstable_readConfig({ config: join(ROOT, "wrangler.toml") });
  expect({ ip: dev.ip, port: dev.port }).toEqual({ ip: "127.0.0.1", port: 8787 });
});

it("serves on the port given, with its state in the directory given", async () => {
  const response = await fetch(`${server.url}/`);
  expect(await response.json()).toMatchObject({ service: "edgepager", protocol: 1 });

  const http = new HttpClient(server.url);
  await http.write("dev-script", 0, new Uint8Array(4096).fill(7));
  await http.synchronize("dev-script", 0, 4096, 2);
  expect(await http.read("dev-script", 0, 4096)).toEqual(new Uint8Array(4096).fill(7));
  // The Durable Object's SQLite and the R2 segment are under --persist-to, not .wrangler/state.
  expect(existsSync(join(persistTo, "v3", "do")), server.output()).toBe(true);
  expect(existsSync(join(persistTo, "v3", "r2")), server.output()).toBe(true);
  expect(readdirSync(join(persistTo, "v3", "do"), { recursive: true }).length).toBeGreaterThan(0);
});

it("takes --var: an unsynchronized page reaches R2 within FLUSH_DELAY_MS=300, not 2000", async () => {
  const http = new HttpClient(server.url);
  const started = Date.now();
  await http.write("dev-var", 0, new Uint8Array(4096).fill(1));
  // The flush alarm is set when the page is journaled, after `started`: with the default of
  // 2000 ms the journal cannot be empty before `started + 2000`.
  while ((await http.stat("dev-var")).journal_pages > 0) {
    expect(Date.now() - started, "journal still not flushed").toBeLessThan(2000);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
});

it("passes the smoke test", async () => {
  const result = await runCli(["smoke", "--url", server.url], cliEnv());
  expect(result.code, result.stdout.toString() + result.stderr).toBe(0);
  expect(result.stdout.toString()).toMatch(/^passed: /m);
});
