/**
 * One owner per group of tables (docs/architecture.md §4): every table of the object is written
 * by exactly one module of `durable/`, the storage tables by the module named for them, and only
 * the segment store calls the pages' R2 bucket (and the directory's manifest its own binding,
 * `DIRECTORY`, docs/architecture.md §8). A source scan, kept simple: it finds the SQL statements
 * that write (`INSERT INTO t`, `UPDATE t … SET`, `DELETE FROM t`, `REPLACE INTO t`) and the calls
 * of `put`, `get`, `head`, `delete` or `list` on something named `bucket` or `PAGES`.
 * `durable/migrations.ts` builds and upgrades every table, so it is left out.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(__dirname, "../..");

/** The storage tables and the one module that may write each (durable/page-store.ts says why). */
const STORAGE_OWNERS: Record<string, string> = {
  journal: "durable/journal.ts",
  pages: "durable/segment-index.ts",
  segments: "durable/segment-index.ts",
  spools: "durable/spools.ts",
};

/** The only module that may call the pages' bucket. */
const BUCKET_OWNER = "durable/segment-store.ts";

/** The only module of the object that writes its directory entry (through `DIRECTORY`). */
const DIRECTORY_OWNER = "durable/manifest.ts";

const WRITES = [
  /\bINSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)/g,
  /\bREPLACE\s+INTO\s+(\w+)/g,
  /\bDELETE\s+FROM\s+(\w+)/g,
  // `… DO UPDATE SET` (an upsert) names no table: the INSERT before it does.
  /\bUPDATE\s+(\w+)(?:\s+AS\s+\w+)?\s+SET\b/g,
];

const BUCKET_CALL = /\b(?:bucket|PAGES)\s*\.\s*(?:put|get|head|delete|list)\s*\(/g;

/** Every TypeScript source of the service (durable/ and worker/), tests left out. */
function sources(): { path: string; text: string }[] {
  const found: { path: string; text: string }[] = [];
  for (const dir of ["durable", "worker"]) {
    for (const entry of readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith(".ts") || entry.name.endsWith(".test.ts")) {
        continue;
      }
      const full = join(entry.parentPath, entry.name);
      found.push({ path: relative(ROOT, full), text: readFileSync(full, "utf8") });
    }
  }
  return found;
}

/** The modules that write each table. */
function writers(): Map<string, Set<string>> {
  const byTable = new Map<string, Set<string>>();
  for (const { path, text } of sources()) {
    if (path === "durable/migrations.ts") continue;
    for (const pattern of WRITES) {
      for (const [, table] of text.matchAll(pattern)) {
        const modules = byTable.get(table!) ?? new Set<string>();
        modules.add(path);
        byTable.set(table!, modules);
      }
    }
  }
  return byTable;
}

describe("one owner per group of tables", () => {
  it("finds the writes (the scan itself works)", () => {
    const found = writers();
    for (const table of Object.keys(STORAGE_OWNERS)) expect(found.has(table), table).toBe(true);
  });

  it("each table is written by exactly one module", () => {
    const shared = [...writers()]
      .filter(([, modules]) => modules.size > 1)
      .map(([table, modules]) => `${table}: ${[...modules].sort().join(", ")}`);
    expect(shared).toEqual([]);
  });

  it("the storage tables are written by their owners", () => {
    const found = writers();
    for (const [table, owner] of Object.entries(STORAGE_OWNERS)) {
      expect([...(found.get(table) ?? [])], table).toEqual([owner]);
    }
  });

  it(`only ${BUCKET_OWNER} calls the R2 bucket, and ${DIRECTORY_OWNER} the directory's`, () => {
    const callers = sources()
      .filter(({ text }) => [...text.matchAll(BUCKET_CALL)].length > 0)
      .map(({ path }) => path);
    expect(callers).toEqual([DIRECTORY_OWNER, BUCKET_OWNER]);
    // The manifest never reaches the pages' bucket, nor the segment store the directory's.
    const text = (path: string) => sources().find((source) => source.path === path)!.text;
    expect(text(DIRECTORY_OWNER)).not.toMatch(/\bPAGES\b/);
    expect(text(BUCKET_OWNER)).not.toMatch(/\bDIRECTORY\b/);
  });
});
