// The production SQL guard (test/helpers/production-sql-guard.ts, installed by the workerd
// project's setupFile) is on in every test, on every MemoryObject instance, and refuses what the
// platform refuses: a 2 MB value, a 100 KB statement, 100 parameters, 32 function arguments.
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { objectStub } from "./helpers/buckets";
import { putPages, readPages } from "./helpers/http";
import {
  PRODUCTION_SQL_LIMITS,
  checkStatement,
  functionCalls,
  isProductionSqlGuarded,
  sqlShape,
  utf8Length,
} from "./helpers/production-sql-guard";
import { meterObjectSql } from "./helpers/sql-meter";

/** Runs `step` with the SqlStorage of the object's running instance. */
function withSql<T>(
  name: string,
  step: (sql: SqlStorage, state: DurableObjectState, instance: MemoryObject) => T,
) {
  return runInDurableObject(objectStub(name), (instance: MemoryObject, state) =>
    step(state.storage.sql, state, instance),
  );
}

function list(n: number, item: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => item(i)).join(", ");
}

const TOO_BIG =
  /^string or blob too big: SQLITE_TOOBIG \(production limit: at most 2,000,000 bytes/;
const TOO_MANY_VARIABLES = /^too many SQL variables: SQLITE_ERROR \(production limit: at most 100 /;
const TOO_LONG = /^statement too long: SQLITE_TOOBIG \(production limit: at most 100,000 bytes/;
const tooManyArgs = (name: string) =>
  new RegExp(
    `^too many arguments on function ${name} at offset \\d+: SQLITE_ERROR \\(production limit: at most 32 `,
  );

describe("the production SQL guard is on", () => {
  it("in an ordinary test, on a MemoryObject's own SqlStorage", async () => {
    await withSql("guard-on", (sql) => {
      expect(isProductionSqlGuarded(sql)).toBe(true);
      expect(() => sql.exec(`SELECT length(?)`, new Uint8Array(2_500_000))).toThrow(TOO_BIG);
    });
  });

  it("on a brand-new object and on an instance after an eviction", async () => {
    const blob = new Uint8Array(2_500_000);
    // Never touched before this line: its instance is created now, after the set-up.
    await withSql("guard-brand-new", (sql) => {
      expect(isProductionSqlGuarded(sql)).toBe(true);
      expect(() => sql.exec(`SELECT length(?)`, blob)).toThrow(TOO_BIG);
    });
    const name = "guard-evicted";
    // An instance running before the eviction, then a new one after it. (No pages are written
    // before: with an idle flush pending, evictDurableObject did not return here.)
    const before = await withSql(name, (sql, _state, instance) => {
      sql.exec(`CREATE TABLE scratch (v)`);
      sql.exec(`INSERT INTO scratch VALUES ('before-eviction')`);
      return { instance, prototype: Object.getPrototypeOf(sql) };
    });
    await evictDurableObject(objectStub(name));
    const after = await withSql(name, (sql, _state, instance) => {
      expect(isProductionSqlGuarded(sql)).toBe(true);
      expect(() => sql.exec(`SELECT length(?)`, blob)).toThrow(TOO_BIG);
      expect(sql.exec(`SELECT v FROM scratch`).one().v).toBe("before-eviction");
      return { instance, prototype: Object.getPrototypeOf(sql) };
    });
    expect(after.instance).not.toBe(before.instance);
    expect(after.prototype).toBe(before.prototype);
    // The object still works after the refused statement.
    const page = new Uint8Array(4096).fill(7);
    expect((await putPages(name, 0, page)).status).toBe(200);
    expect(await readPages(name, 0, 4096)).toEqual(page);
  });
});

describe("refuses what the platform refuses", () => {
  it("a bound string or BLOB over 2,000,000 bytes (strings in UTF-8), not one of exactly that", async () => {
    await withSql("guard-values", (sql) => {
      const max = PRODUCTION_SQL_LIMITS.maxValueBytes;
      const length = (value: unknown) =>
        sql.exec<{ n: number }>(`SELECT length(?) AS n`, value).one().n;
      expect(length(new Uint8Array(max))).toBe(max);
      expect(length("x".repeat(max))).toBe(max);
      expect(() => sql.exec(`SELECT length(?)`, "x".repeat(max + 1))).toThrow(TOO_BIG);
      expect(() => sql.exec(`SELECT length(?)`, new ArrayBuffer(max + 1))).toThrow(TOO_BIG);
      expect(() => sql.exec(`SELECT length(?)`, new DataView(new ArrayBuffer(max + 1)))).toThrow(
        TOO_BIG,
      );
      // 1,000,001 characters, 2,000,002 UTF-8 bytes.
      expect(() => sql.exec(`SELECT ?, length(?)`, 1, "é".repeat(1_000_001))).toThrow(
        /bound parameter 2 is a string of 2,000,002 UTF-8 bytes/,
      );
      // A view is its own bytes, not its whole buffer.
      const big = new Uint8Array(max + 10);
      expect(length(big.subarray(0, 1000))).toBe(1000);
    });
  });

  it("more than 100 bound parameters", async () => {
    await withSql("guard-parameters", (sql) => {
      const values = (n: number) => Array.from({ length: n }, (_, i) => i);
      const statement = (n: number) => `SELECT * FROM (VALUES (${list(n, () => "?")}))`;
      expect(
        sql
          .exec(statement(100), ...values(100))
          .raw()
          .next().value,
      ).toHaveLength(100);
      expect(() => sql.exec(statement(101), ...values(101))).toThrow(TOO_MANY_VARIABLES);
      // A parameter number in the text counts too.
      expect(() => sql.exec(`SELECT ?101`)).toThrow(TOO_MANY_VARIABLES);
    });
  });

  it("more than 32 arguments to one function call (the local runtime allows 127)", async () => {
    await withSql("guard-arguments", (sql) => {
      const array = (n: number) => `SELECT json_array(${list(n, (i) => String(i))}) AS a`;
      expect(JSON.parse(sql.exec<{ a: string }>(array(32)).one().a)).toHaveLength(32);
      expect(() => sql.exec(array(33))).toThrow(tooManyArgs("json_array"));
      // 17 key/value pairs are 34 arguments.
      const object = `SELECT json_object(${list(17, (i) => `'k${i}', ${i}`)})`;
      expect(() => sql.exec(object)).toThrow(tooManyArgs("json_object"));
      // Nested: the inner call is over, the outer is not.
      expect(() => sql.exec(`SELECT max(1, coalesce(${list(40, () => "NULL")}))`)).toThrow(
        tooManyArgs("coalesce"),
      );
      // An IN list of 40 is not a call.
      expect(sql.exec(`SELECT 3 IN (${list(40, (i) => String(i))}) AS x`).one().x).toBe(1);
    });
  });

  it("SQL text over 100,000 bytes (UTF-8), not of exactly that", async () => {
    await withSql("guard-length", (sql) => {
      const max = PRODUCTION_SQL_LIMITS.maxSqlBytes;
      const padded = (bytes: number) => `SELECT 1 AS x /*${"-".repeat(bytes - 18)}*/`;
      expect(utf8Length(padded(max))).toBe(max);
      expect(sql.exec(padded(max)).one().x).toBe(1);
      expect(() => sql.exec(padded(max + 1))).toThrow(TOO_LONG);
      // 40,000 characters, 120,000 bytes.
      expect(() => sql.exec(`SELECT '${"€".repeat(40_000)}'`)).toThrow(/this one has 120,009/);
    });
  });

  it("inside transactionSync, rolling back as the platform's error would", async () => {
    await withSql("guard-transaction", (sql, state) => {
      sql.exec(`CREATE TABLE scratch (v)`);
      expect(() =>
        state.storage.transactionSync(() => {
          sql.exec(`INSERT INTO scratch VALUES (1)`);
          sql.exec(`INSERT INTO scratch VALUES (?)`, "x".repeat(2_000_001));
        }),
      ).toThrow(TOO_BIG);
      expect(sql.exec(`SELECT count(*) AS n FROM scratch`).one().n).toBe(0);
      state.storage.transactionSync(() => sql.exec(`INSERT INTO scratch VALUES (?)`, "ok"));
      expect(sql.exec(`SELECT v FROM scratch`).one().v).toBe("ok");
    });
  });

  it("lets ordinary statements through: column lists, VALUES rows, CTEs, json_each", async () => {
    await withSql("guard-ordinary", (sql) => {
      const columns = list(40, (i) => `c${i}`);
      sql.exec(`CREATE TABLE IF NOT EXISTS wide (${columns}, PRIMARY KEY (c0, c1))`);
      sql.exec(`CREATE INDEX IF NOT EXISTS wide_by ON wide (${columns})`);
      sql.exec(`INSERT INTO wide (${columns}) VALUES (${list(40, (i) => String(i))})`);
      const row = sql
        .exec(
          `WITH picked (${list(3, (i) => `p${i}`)}) AS (SELECT c0, c1, c39 FROM wide)
           SELECT p0, p2, (SELECT group_concat(value, ',' ORDER BY value DESC) FROM json_each(?)) AS j
           FROM picked WHERE (p0, p1) IN (SELECT c0, c1 FROM wide) AND p2 IN (${list(40, () => "39")})`,
          JSON.stringify([1, 2, 3]),
        )
        .one();
      expect(row).toEqual({ p0: 0, p2: 39, j: "3,2,1" });
    });
  });

  it("keeps working under the sql-meter, which wraps exec of the instance", async () => {
    const name = "guard-metered";
    const meter = await meterObjectSql(name);
    await withSql(name, (sql) => {
      sql.exec(`CREATE TABLE scratch (v)`);
      sql.exec(`INSERT INTO scratch VALUES ('metered')`);
      expect(() => sql.exec(`SELECT length(?)`, new Uint8Array(2_500_000))).toThrow(TOO_BIG);
    });
    // The refused statement never ran, so the meter saw only the two before it.
    expect(meter.statements()).toBe(2);
    expect(meter.byStatement()).toMatchObject({ "INSERT INTO scratch VALUES ('metered')": 1 });
    await meter.stop();
    await withSql(name, (sql) => {
      expect(isProductionSqlGuarded(sql)).toBe(true);
      expect(() => sql.exec(`SELECT length(?)`, new Uint8Array(2_500_000))).toThrow(TOO_BIG);
    });
  });
});

describe("counting function arguments in SQL text", () => {
  const calls = (sql: string) => functionCalls(sql).map(({ name, args }) => `${name}/${args}`);

  it("counts nested calls separately", () => {
    expect(calls(`SELECT max(a, min(b, c, d), e), abs(-1)`)).toEqual(["max/3", "min/3", "abs/1"]);
    expect(calls(`SELECT f(g(h(1, 2)), (3, 4))`)).toEqual(["f/2", "g/1", "h/2"]);
  });

  it("skips commas and parentheses in strings, quoted names and comments", () => {
    expect(calls(`SELECT f('a, b', "c,d", 'it''s (x, y)', [e,f], \`g,(\`)`)).toEqual(["f/5"]);
    expect(calls(`SELECT f(1, -- a, b)\n 2 /* , 3) */, X'0102')`)).toEqual(["f/3"]);
    expect(calls(`SELECT "coalesce"(1, 2), 'g(1, 2)'`)).toEqual(["coalesce/2"]);
  });

  it("does not take IN lists, VALUES rows or subqueries for calls", () => {
    expect(calls(`SELECT * FROM t WHERE x IN (${list(40, String)}) AND EXISTS (SELECT 1)`)).toEqual(
      [],
    );
    expect(
      calls(`INSERT INTO t (${list(40, (i) => `c${i}`)}) VALUES (${list(40, String)}), (1, 2)`),
    ).toEqual([]);
    expect(calls(`DELETE FROM t WHERE (a, b) IN (SELECT f(x), y FROM u)`)).toEqual(["f/1"]);
  });

  it("does not take column lists of DDL, upserts, joins and CTEs for calls", () => {
    expect(
      calls(
        `CREATE TABLE IF NOT EXISTS t (a, b DECIMAL(10, 2), PRIMARY KEY (a, b), UNIQUE (b), CHECK (length(a) > 0))`,
      ),
    ).toEqual(["DECIMAL/2", "length/1"]);
    expect(
      calls(`CREATE TABLE t (a REFERENCES p(x, y), FOREIGN KEY (a) REFERENCES "p" (x))`),
    ).toEqual([]);
    expect(calls(`CREATE UNIQUE INDEX IF NOT EXISTS i ON t (a, b, c)`)).toEqual([]);
    expect(calls(`CREATE VIEW v (a, b) AS SELECT 1, 2`)).toEqual([]);
    expect(calls(`CREATE VIRTUAL TABLE t USING fts5(a, b, c)`)).toEqual([]);
    expect(
      calls(`INSERT INTO main.t(a, b) VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET (a, b) = (3, 4)`),
    ).toEqual([]);
    expect(calls(`SELECT * FROM a JOIN b USING (x, y) JOIN c ON coalesce(a.x, c.x) = 1`)).toEqual([
      "coalesce/2",
    ]);
    expect(
      calls(`WITH RECURSIVE slot (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM slot WHERE i + 1 < ?1),
             b(x, y) AS MATERIALIZED (SELECT substr(?4, i * ?5 + 1, ?5), 2 FROM slot)
             SELECT count(*) AS n, f(1, 2) AS m FROM b`),
    ).toEqual(["substr/3", "count/0", "f/2"]);
  });

  it("handles window, filter and ordered-aggregate syntax", () => {
    expect(
      calls(
        `SELECT sum(x) FILTER (WHERE a IN (1, 2)) OVER (PARTITION BY a, b ORDER BY c, d), count(DISTINCT y), count(*), random()`,
      ),
    ).toEqual(["sum/1", "count/1", "count/0", "random/0"]);
    expect(calls(`SELECT group_concat(x, ',' ORDER BY a, b, c)`)).toEqual(["group_concat/2"]);
    expect(calls(`SELECT CAST(x AS INTEGER), raise(ABORT, 'no')`)).toEqual([]);
  });

  it("tells keyword functions from operators", () => {
    expect(calls(`SELECT like('a%', x), replace(a, 'b', 'c'), if(a, b), iif(a, b, c)`)).toEqual([
      "like/2",
      "replace/3",
      "if/2",
      "iif/3",
    ]);
    expect(
      calls(`SELECT * FROM t WHERE x LIKE (?) OR y NOT GLOB (?) OR z LIKE ('%' || w)`),
    ).toEqual([]);
    expect(calls(`INSERT OR REPLACE INTO t (a) VALUES (1)`)).toEqual([]);
  });

  it("finds json_each and friends, also table-valued in FROM", () => {
    expect(
      calls(
        `SELECT value FROM json_each(?) AS b WHERE key IN (SELECT value FROM json_each(?2, '$.a'))`,
      ),
    ).toEqual(["json_each/1", "json_each/2"]);
    expect(
      calls(`UPDATE segments SET live = live - moved.n
       FROM (SELECT pages.segment, count(*) AS n FROM json_each(?1) AS b
             JOIN pages ON pages.page = b.value ->> 0 GROUP BY pages.segment) AS moved
       WHERE segments.key = moved.segment`),
    ).toEqual(["count/0", "json_each/1"]);
  });

  it("counts across statements separated by semicolons", () => {
    expect(calls(`SELECT f(1, 2); SELECT g(1); CREATE TABLE t (a, b)`)).toEqual(["f/2", "g/1"]);
  });

  it("counts parameters the way SQLite numbers them", () => {
    expect(sqlShape(`SELECT ?, ?, ?`).variables).toBe(3);
    expect(sqlShape(`SELECT ?1 + ?1 + ?3`).variables).toBe(3);
    expect(sqlShape(`SELECT ?5, ?`).variables).toBe(6);
    expect(sqlShape(`SELECT :a, @b, :a, $c`).variables).toBe(3);
    expect(sqlShape(`SELECT '?', "?", 1 -- ?\n`).variables).toBe(0);
  });

  it("names the limit in the error, with the platform's message first", () => {
    expect(() => checkStatement(`SELECT coalesce(${list(33, String)})`, [])).toThrow(
      "too many arguments on function coalesce at offset 7: SQLITE_ERROR (production limit: at most 32 arguments per SQL function call; this call has 33",
    );
    expect(() => checkStatement(`SELECT 1`, [1, "x".repeat(2_000_001)])).toThrow(
      "string or blob too big: SQLITE_TOOBIG (production limit: at most 2,000,000 bytes per string or BLOB; bound parameter 2 is a string of 2,000,001 UTF-8 bytes",
    );
  });
});
