/**
 * SQLite on edgepager survives crashes (docs/sqlite.md): the whole local server killed with
 * SIGKILL at random moments while a writer commits, and writer processes killed in the middle of
 * commits that span several frames (test/node/fixtures/sqlite-writer.ts lets some of a commit's
 * frames land, acked, and dies before the rest). After each: `integrity_check` is ok, every
 * transaction whose COMMIT returned is there, and none is there in part.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../client/sqlite";
import { ROOT, buildCliIfStale, cliEnv, runCli } from "./cli-process";
import { freePort, seededRandom, startWranglerDev, type DevServer } from "./harness";

const WRITER = join(ROOT, "node_modules", ".cache", "edgepager-test", "sqlite-writer.js");
const ROWS = 40;
const persistTo = mkdtempSync(join(tmpdir(), "edgepager-sqlite-crash-"));
let server: DevServer | undefined;
let port = 0;

beforeAll(async () => {
  await buildCliIfStale();
  await build({
    entryPoints: [join(ROOT, "test", "node", "fixtures", "sqlite-writer.ts")],
    bundle: true,
    format: "esm",
    platform: "node",
    packages: "external",
    outfile: WRITER,
    logLevel: "warning",
  });
  port = await freePort();
  server = await startWranglerDev({ port, persistTo });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  rmSync(persistTo, { recursive: true, force: true });
});

/**
 * What a fresh process sees: integrity, and how many rows each transaction has. Asked of the
 * built CLI as the database's writer, which rolls back a journal a dead writer left, as SQLite
 * does after a crash (a reader waits for that, docs/sqlite.md).
 */
async function check(object: string): Promise<{ integrity: string; rows: Map<number, number> }> {
  const result = await runCli(
    [
      "--url",
      server!.url,
      "--json",
      "sql",
      object,
      "PRAGMA integrity_check; SELECT txn, count(*) AS n FROM t GROUP BY txn",
    ],
    cliEnv(),
  );
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  const lines = result.stdout.toString().trim().split("\n");
  const integrity = (JSON.parse(lines[0]!) as { integrity_check: string }[])[0]!.integrity_check;
  const rows = new Map<number, number>();
  for (const { txn, n } of JSON.parse(lines[1] ?? "[]") as { txn: number; n: number }[]) {
    rows.set(txn, n);
  }
  return { integrity, rows };
}

/** Every committed transaction whole, and nothing else but whole transactions. */
function expectWhole(rows: Map<number, number>, committed: Set<number>): void {
  for (const txn of committed) expect(rows.get(txn), `transaction ${txn}`).toBe(ROWS);
  for (const [txn, n] of rows) expect(n, `transaction ${txn} in part`).toBe(ROWS);
}

/** Runs the writer fixture to its end (or its SIGKILL); returns the transactions it committed. */
function runWriter(
  plan: Record<string, unknown>,
): Promise<{ committed: number[]; signal: string | null }> {
  const child = spawn(process.execPath, [WRITER, JSON.stringify(plan)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`writer exited ${code}: ${stderr}`));
      const committed = [...stdout.matchAll(/committed (\d+)/g)].map((m) => Number(m[1]));
      resolve({ committed, signal });
    });
  });
}

describe("a writer process killed in the middle of a commit of several frames", () => {
  it("leaves nothing of that commit, every earlier commit whole, and the next writer goes on", async () => {
    const object = "killed-writer.db";
    const random = seededRandom(20261202);
    const committed = new Set<number>();
    let next = 0;
    for (let round = 0; round < 4; round++) {
      // 40 rows of 48 KiB: about 2 MiB a commit, so its group spans several 1 MiB frames. Every
      // other round the commit is too large for a group (maxGroupBytes) and goes through the
      // rollback journal instead.
      const plan = {
        ...(round % 2 === 1 && { maxGroupBytes: 512 * 1024 }),
        url: server!.url,
        object,
        first: next,
        count: 3,
        rowsPerTransaction: ROWS,
        blobBytes: 48 * 1024,
        killAt: next + 1 + Math.floor(random() * 2),
        framesBeforeKill: 1 + Math.floor(random() * 2),
      };
      const run = await runWriter(plan);
      expect(run.signal, "the writer died by SIGKILL").toBe("SIGKILL");
      for (const txn of run.committed) committed.add(txn);
      expect(run.committed).not.toContain(plan.killAt);
      const { integrity, rows } = await check(object);
      expect(integrity).toBe("ok");
      expectWhole(rows, committed);
      expect(rows.has(plan.killAt), `the cut transaction ${plan.killAt}`).toBe(false);
      next = plan.killAt;
    }
    // A writer that is not killed finishes its work on the same database.
    const last = await runWriter({
      url: server!.url,
      object,
      first: next,
      count: 2,
      rowsPerTransaction: ROWS,
      blobBytes: 1024,
    });
    expect(last.signal).toBeNull();
    for (const txn of last.committed) committed.add(txn);
    const { integrity, rows } = await check(object);
    expect(integrity).toBe("ok");
    expectWhole(rows, committed);
  }, 300_000);
});

describe("the whole server killed with SIGKILL at random moments", () => {
  it("loses no committed transaction and shows none in part", async () => {
    const object = "killed-server.db";
    const random = seededRandom(7);
    const db = await openDatabase({ url: server!.url, object });
    await db.exec("CREATE TABLE IF NOT EXISTS t (txn INTEGER, i INTEGER, b BLOB)");
    const committed = new Set<number>();
    let stop = false;
    const writing = (async () => {
      for (let txn = 0; !stop; txn++) {
        await db.exec(
          `BEGIN;
           WITH RECURSIVE s (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${ROWS})
           INSERT INTO t (txn, i, b) SELECT ${txn}, i, randomblob(2048) FROM s;
           COMMIT;`,
        );
        committed.add(txn);
      }
    })();
    for (let kill = 0; kill < 3; kill++) {
      await new Promise((resolve) => setTimeout(resolve, 300 + random() * 1200));
      await server!.kill();
      server = await startWranglerDev({ port, persistTo });
    }
    // Let the writer reconnect and commit a few more, then stop it.
    const before = committed.size;
    while (committed.size < before + 3) await new Promise((resolve) => setTimeout(resolve, 50));
    stop = true;
    await writing;
    await db.close();
    const { integrity, rows } = await check(object);
    expect(integrity).toBe("ok");
    expectWhole(rows, committed);
  }, 300_000);
});
