/**
 * SQLite on edgepager (docs/sqlite.md), against the real Worker: the database is its object byte
 * for byte; a commit is one atomic group in one frame; 100,000 rows in 1,000 transactions check
 * out from a fresh process; readers never see a torn or stale state while the writer commits; a
 * second writer is refused; a commit too large for a group goes through the rollback journal;
 * files move in and out with `edgepager put`/`get` and Debian's `sqlite3` reads them.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpClient } from "../../client";
import { openDatabase } from "../../client/sqlite";
import { buildCliIfStale, cliEnv, runCli } from "./cli-process";
import { newWireLog, recordingWebSocket, startHarness, type Harness } from "./harness";

let harness: Harness;
const dir = mkdtempSync(join(tmpdir(), "edgepager-sqlite-"));

beforeAll(async () => {
  harness = await startHarness();
  await buildCliIfStale();
}, 120_000);

afterAll(async () => {
  await harness?.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(object: string, options: Partial<Parameters<typeof openDatabase>[0]> = {}) {
  return openDatabase({ url: harness.url, object, ...options });
}

/** Runs the CLI against the harness. */
function cli(args: string[]) {
  return runCli(["--url", harness.url, ...args], cliEnv());
}

describe("a database on an object", () => {
  it("is the object byte for byte: a SQLite file with the database's pages and size", async () => {
    const db = await open("byte-for-byte.db");
    await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
    await db.exec("INSERT INTO t (name) VALUES ('a'), ('b'), ('c')");
    expect(await db.query("SELECT name FROM t ORDER BY id")).toEqual([
      { name: "a" },
      { name: "b" },
      { name: "c" },
    ]);
    await db.close();
    const http = new HttpClient(harness.url);
    const status = await http.stat("byte-for-byte.db");
    const bytes = await http.read("byte-for-byte.db", 0, status.size);
    expect(new TextDecoder().decode(bytes.subarray(0, 16))).toBe("SQLite format 3\0");
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    // The header's page size and page count describe exactly the object's size.
    expect(view.getUint16(16) * view.getUint32(28)).toBe(status.size);
    // Its journal was used for the first commit only, and is empty.
    expect((await http.stat("byte-for-byte.db-journal")).size).toBe(0);
  });

  it("commits a small transaction as one atomic group, in one frame", async () => {
    const log = newWireLog();
    const db = await open("one-frame.db", { WebSocket: recordingWebSocket(log) });
    await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    await db.exec("INSERT INTO t (v) VALUES ('warm')");
    const before = log.sentFrames.length;
    const sentBefore = log.sent.length;
    await db.exec("INSERT INTO t (v) VALUES ('x')");
    const frames = log.sentFrames.slice(before).filter((f) => f.messages > 0);
    const messages = log.sent.slice(sentBefore);
    const commits = messages.filter((m) => m.header.type === "memory_object_synchronize");
    expect(commits).toHaveLength(1);
    const group = commits[0]!.header.group as number;
    expect(group).toEqual(expect.any(Number));
    const grouped = messages.filter((m) => m.header.group === group);
    // The returns of the commit and its synchronize, all in one frame (a `received` may ride along).
    expect(new Set(grouped.map((m) => m.frame)).size).toBe(1);
    expect(grouped.length).toBeGreaterThanOrEqual(2);
    expect(frames.filter((f) => f.messages >= grouped.length)).toHaveLength(1);
    await db.close();
  });

  it("keeps 100,000 rows written in 1,000 transactions: integrity and checksum from a fresh process", async () => {
    const object = "hundred-thousand.db";
    const db = await open(object);
    await db.exec("CREATE TABLE rows (id INTEGER PRIMARY KEY, txn INTEGER, v TEXT)");
    let expectedSum = 0;
    for (let txn = 0; txn < 1000; txn++) {
      const values: string[] = [];
      for (let i = 0; i < 100; i++) {
        const id = txn * 100 + i;
        expectedSum += id;
        values.push(`(${id}, ${txn}, 'row ${id}')`);
      }
      await db.exec(`BEGIN; INSERT INTO rows (id, txn, v) VALUES ${values.join(",")}; COMMIT;`);
    }
    await db.close();
    const result = await cli([
      "--json",
      "sql",
      "--readonly",
      object,
      "PRAGMA integrity_check; SELECT count(*) AS n, sum(id) AS total, count(DISTINCT txn) AS txns FROM rows",
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const [integrity, counts] = result.stdout
      .toString()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(integrity).toEqual([{ integrity_check: "ok" }]);
    expect(counts).toEqual([{ n: 100_000, total: expectedSum, txns: 1000 }]);
  }, 300_000);
});

describe("readers and writers", () => {
  it("readers, in this process and in others, never see a torn or stale state while the writer commits", async () => {
    const object = "bank.db";
    const writer = await open(object);
    // 200 accounts of about 500 bytes each: 25 pages or so, so a transfer touches two pages.
    await writer.exec(
      "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER, pad TEXT); CREATE TABLE log (seq INTEGER)",
    );
    const accounts = Array.from({ length: 200 }, (_, i) => `(${i}, 1000, printf('%500s', ''))`);
    await writer.exec(
      `INSERT INTO accounts VALUES ${accounts.join(",")}; INSERT INTO log VALUES (0)`,
    );
    // One reader fetches a page at a time (no read-ahead), so a commit often lands between two
    // of its pages: it goes on when none it read changed, and is run again (more often than
    // the default allows) when one did. The other reads ahead, as readers do by default.
    const readers = await Promise.all([
      open(object, { readonly: true, readAheadBytes: 4096, retries: 200 }),
      open(object, { readonly: true }),
    ]);
    let committed = 0;
    let stop = false;
    // Transfers between accounts far apart (on different pages): the total never changes. The
    // writer goes on until every reader has done its checks.
    const writing = (async () => {
      for (let seq = 1; !stop || seq <= 30; seq++) {
        const from = (seq * 37) % 200;
        const to = (seq * 91 + 100) % 200;
        await writer.exec(
          `BEGIN; UPDATE accounts SET balance = balance - ${seq} WHERE id = ${from};
           UPDATE accounts SET balance = balance + ${seq} WHERE id = ${to};
           UPDATE log SET seq = ${seq}; COMMIT;`,
        );
        committed = seq;
      }
    })();
    const CHECK =
      "SELECT (SELECT sum(balance) FROM accounts) AS total, (SELECT seq FROM log) AS seq";
    // Readers in this process (each its own kernel and SQLite) ...
    const inProcess = readers.map(async (reader, i) => {
      for (let check = 0; check < (i === 0 ? 3 : 20); check++) {
        const floor = committed;
        const [row] = await reader.query<{ total: number; seq: number }>(CHECK);
        expect(row!.total).toBe(200 * 1000);
        // Not stale: every commit that returned before this read began is in it.
        expect(row!.seq).toBeGreaterThanOrEqual(floor);
      }
    });
    // ... and in processes of their own: the CLI, read-only.
    const otherProcesses = (async () => {
      for (let run = 0; run < 3; run++) {
        const floor = committed;
        const result = await cli(["--json", "sql", "--readonly", object, CHECK]);
        expect(result.code, result.stderr).toBe(0);
        const [row] = JSON.parse(result.stdout.toString()) as { total: number; seq: number }[];
        expect(row!.total).toBe(200 * 1000);
        expect(row!.seq).toBeGreaterThanOrEqual(floor);
      }
    })();
    try {
      await Promise.all([...inProcess, otherProcesses]);
    } finally {
      stop = true;
      await writing;
    }
    expect(committed).toBeGreaterThan(30);
    for (const reader of readers) await reader.close();
    await writer.close();
  }, 120_000);

  it("a reader's scan reads further ahead at each sequential miss, and keeps at most maxCleanBytes", async () => {
    const object = "scan.db";
    const writer = await open(object);
    await writer.exec("CREATE TABLE t (b BLOB)");
    await writer.exec(
      `WITH RECURSIVE s (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1500)
       INSERT INTO t SELECT randomblob(4000) FROM s`,
    );
    await writer.close();
    // Frames that ask for pages besides the header (which every transaction asks for afresh).
    const requestFrames = (log: ReturnType<typeof newWireLog>, from = 0) =>
      new Set(
        log.sent
          .slice(from)
          .filter((m) => m.header.type === "memory_object_data_request" && m.header.offset > 0)
          .map((m) => m.frame),
      ).size;
    const SCAN = "SELECT count(*) AS n, sum(length(b)) AS bytes FROM t";
    const log = newWireLog();
    const reader = await open(object, { readonly: true, WebSocket: recordingWebSocket(log) });
    expect(await reader.query(SCAN)).toEqual([{ n: 1500, bytes: 6_000_000 }]);
    // About 6 MiB, with the table's interior page in the middle: 1 MiB at a time takes 7 frames;
    // reading further at each miss where a fetch ended, 4.
    expect(requestFrames(log)).toBeLessThanOrEqual(4);
    // Scanned again, all of it is held: only the header is asked for.
    const before = log.sent.length;
    await reader.query(SCAN);
    expect(requestFrames(log, before)).toBe(0);
    await reader.close();
    // A reader that may keep 512 KiB fetches most of it again.
    const smallLog = newWireLog();
    const small = await open(object, {
      readonly: true,
      maxCleanBytes: 512 * 1024,
      WebSocket: recordingWebSocket(smallLog),
    });
    await small.query(SCAN);
    const again = smallLog.sent.length;
    expect(await small.query(SCAN)).toEqual([{ n: 1500, bytes: 6_000_000 }]);
    expect(requestFrames(smallLog, again)).toBeGreaterThan(1);
    await small.close();
  });

  it("a second writer is refused while the first is connected, and welcome after it closed", async () => {
    const object = "one-writer.db";
    const first = await open(object);
    await first.exec("CREATE TABLE t (v)");
    await expect(open(object)).rejects.toThrow(/already has a writer/);
    // Readers are welcome meanwhile.
    const reader = await open(object, { readonly: true });
    await expect(reader.exec("INSERT INTO t VALUES (1)")).rejects.toThrow(/readonly|read-only/);
    await reader.close();
    await first.close();
    const second = await open(object);
    await second.exec("INSERT INTO t VALUES (2)");
    expect(await second.query("SELECT v FROM t")).toEqual([{ v: 2 }]);
    await second.close();
  });

  it("writes a commit too large for one group through the rollback journal", async () => {
    const object = "large-commit.db";
    const log = newWireLog();
    const db = await open(object, { maxGroupBytes: 64 * 1024, WebSocket: recordingWebSocket(log) });
    await db.exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)");
    await db.exec("INSERT INTO blobs (b) VALUES (zeroblob(10))");
    const before = log.sent.length;
    await db.exec(
      `WITH RECURSIVE s (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100)
       INSERT INTO blobs (b) SELECT randomblob(4000) FROM s`,
    );
    const journaled = log.sent
      .slice(before)
      .filter((m) => m.header.type === "memory_object_data_return" && m.header.dirty);
    // The journal object was written (its socket is another one than the database's).
    expect(new Set(journaled.map((m) => m.socket)).size).toBe(2);
    expect(await db.query("SELECT count(*) AS n FROM blobs")).toEqual([{ n: 101 }]);
    expect(await db.query("PRAGMA integrity_check")).toEqual([{ integrity_check: "ok" }]);
    await db.close();
    expect((await new HttpClient(harness.url).stat(`${object}-journal`)).size).toBe(0);
  });
});

describe("options", () => {
  it("a bad option is refused naming it, before anything is opened", async () => {
    for (const [options, rule] of [
      [{ durability: "disk" }, /durability must be "journal" or "r2"/],
      [{ maxGroupBytes: 0 }, /maxGroupBytes must be a positive integer/],
      [{ readAheadBytes: 1.5 }, /readAheadBytes must be a positive integer/],
      [{ maxCleanBytes: -1 }, /maxCleanBytes must be a positive integer/],
      [{ retries: -1 }, /retries must be a non-negative integer/],
      [{ object: "x".repeat(121) }, /object must be a name of 1 to 120 characters/],
    ] as const) {
      await expect(open("options.db", options as never), JSON.stringify(options)).rejects.toThrow(
        rule,
      );
    }
    expect((await new HttpClient(harness.url).stat("options.db")).kernels).toEqual([]);
  });
});

describe("the package export", () => {
  it("edgepager/sqlite (the built bundle) opens and queries a database", async () => {
    // By a name in a variable: the type check runs before the build makes dist/.
    const specifier = "edgepager/sqlite";
    const sqlite = (await import(specifier)) as typeof import("../../client/sqlite");
    const db = await sqlite.openDatabase({ url: harness.url, object: "export.db" });
    await db.exec("CREATE TABLE t (v); INSERT INTO t VALUES (42)");
    expect(await db.prepare("SELECT v FROM t WHERE v = ?").all([42])).toEqual([{ v: 42 }]);
    await db.close();
  });
});

describe("files in and out", () => {
  it("a database made by sqlite3 and put with the CLI is queryable; one downloaded with get passes sqlite3's integrity_check", async () => {
    const made = join(dir, "made.db");
    const sqlite3 = (file: string, sql: string) =>
      spawnSync("sqlite3", [file, sql], { encoding: "utf8" });
    const created = sqlite3(
      made,
      "CREATE TABLE pets (name TEXT, legs INT); INSERT INTO pets VALUES ('cat', 4), ('bird', 2);",
    );
    expect(created.status, created.stderr).toBe(0);
    expect((await cli(["put", "pets.db", made])).code).toBe(0);
    const table = await cli(["sql", "pets.db", "SELECT name, legs FROM pets ORDER BY legs"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.toString()).toBe("name  legs\nbird  2\ncat   4\n");
    const insert = await cli(["sql", "pets.db", "INSERT INTO pets VALUES ('spider', 8)"]);
    expect(insert.code, insert.stderr).toBe(0);

    const downloaded = join(dir, "downloaded.db");
    const got = await cli(["get", "pets.db", "--output", downloaded]);
    expect(got.code, got.stderr).toBe(0);
    expect(sqlite3(downloaded, "PRAGMA integrity_check").stdout).toBe("ok\n");
    expect(sqlite3(downloaded, "SELECT count(*) FROM pets").stdout).toBe("3\n");
    expect(readFileSync(downloaded).byteLength % 4096).toBe(0);
  });

  it("edgepager sql reads SQL from a file, prints JSON, and exits 5 on an SQL error", async () => {
    const script = join(dir, "script.sql");
    writeFileSync(
      script,
      "CREATE TABLE n (v); INSERT INTO n VALUES (1), (2); SELECT sum(v) AS s FROM n;",
    );
    const result = await cli(["--json", "sql", "script.db", "--file", script]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.toString())).toEqual([{ s: 3 }]);
    const bad = await cli(["sql", "script.db", "SELECT * FROM nowhere"]);
    expect(bad.code).toBe(5);
    expect(bad.stderr).toMatch(/no such table: nowhere/);
  });
});
