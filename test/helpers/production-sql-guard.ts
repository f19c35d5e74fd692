/**
 * Production SQL limits in every workerd test (issue 9). Durable Object SQLite on the platform
 * refuses: a string or BLOB over 2 MB (2,000,000 bytes; also a row over 2 MB), SQL text over
 * 100 KB (100,000 bytes), more than 100 bound parameters, more than 32 arguments to one SQL
 * function. The local runtime is more forgiving (a value of about 8 MiB, 127 function
 * arguments; it does refuse 101 parameters and 100,001 bytes of SQL, checked here too so the
 * message names the limit), so code that passes every test could fail on the platform. It wraps
 * `exec` on the prototype of SqlStorage, which every Durable Object of the main worker shares
 * with the tests (one isolate), so objects created later and instances after an eviction are
 * covered too. It is installed by test/setup/production-sql-guard.ts (a vitest setupFile of the
 * "workerd" project), never by production code. It throws before the statement runs, with the
 * platform's message plus the limit; inside `transactionSync` that rolls back as the real error
 * would. Not checked: the 2 MB row limit (values built inside SQLite, or several bound values
 * adding up), which needs the stored row.
 */
import { runInDurableObject } from "cloudflare:test";
import type { MemoryObject } from "../../durable/memory-object";
import { objectStub } from "./buckets";

export const PRODUCTION_SQL_LIMITS = {
  /** Bytes of one string (UTF-8) or BLOB. */
  maxValueBytes: 2_000_000,
  /** Bytes (UTF-8) of the SQL text of one `exec`. */
  maxSqlBytes: 100_000,
  /** Bound parameters of one statement. */
  maxParameters: 100,
  /** Arguments of one SQL function call. */
  maxFunctionArgs: 32,
} as const;

const GUARD = Symbol.for("edgepager.productionSqlGuard");
/** The object whose SqlStorage the set-up reaches the shared prototype through. */
const GUARD_PROBE_OBJECT = "production-sql-guard-probe";

const SOURCE = "test/helpers/production-sql-guard.ts";

function grouped(n: number): string {
  return n.toLocaleString("en-US");
}

/** UTF-8 bytes of a string (a lone surrogate counts 3, as TextEncoder writes U+FFFD). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/** Bytes SQLite stores for a bound string or BLOB; null for anything else. */
function boundValueBytes(value: unknown): { kind: "string" | "BLOB"; bytes: number } | null {
  if (typeof value === "string") {
    // Each UTF-16 unit is 1 to 3 bytes: only the middle range needs counting.
    const max = PRODUCTION_SQL_LIMITS.maxValueBytes;
    if (value.length > max) return { kind: "string", bytes: value.length };
    if (value.length * 3 <= max) return { kind: "string", bytes: value.length };
    return { kind: "string", bytes: utf8Length(value) };
  }
  if (value instanceof ArrayBuffer) return { kind: "BLOB", bytes: value.byteLength };
  if (ArrayBuffer.isView(value)) return { kind: "BLOB", bytes: value.byteLength };
  return null;
}

// ---- A small SQLite tokenizer: enough to find function calls and parameters. ----

type TokenKind = "word" | "quoted" | "literal" | "variable" | "punct";
interface Token {
  kind: TokenKind;
  /** Upper-cased for words, unquoted for quoted names, the character for punctuation. */
  text: string;
  /** The source text of the token. */
  raw: string;
  start: number;
}

// SQLite's keywords (https://sqlite.org/lang_keywords.html). A keyword before "(" is syntax
// (IN, VALUES, EXISTS, OVER, KEY, CHECK, CAST, ...), except the few that are also functions.
const KEYWORDS = new Set(
  `ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN
  BETWEEN BY CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS
  CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE
  DESC DETACH DISTINCT DO DROP EACH ELSE END ESCAPE EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL
  FILTER FIRST FOLLOWING FOR FOREIGN FROM FULL GENERATED GLOB GROUP GROUPS HAVING IF IGNORE
  IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT INSTEAD INTERSECT INTO IS ISNULL JOIN KEY LAST
  LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT NOTHING NOTNULL NULL NULLS OF OFFSET ON OR
  ORDER OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY RAISE RANGE RECURSIVE
  REFERENCES REGEXP REINDEX RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS
  SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN TIES TO TRANSACTION TRIGGER UNBOUNDED UNION
  UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW WITH WITHOUT`.split(/\s+/),
);
/** Keywords that are also functions: replace(), if(), and like()/glob()/... when not operators. */
const FUNCTION_KEYWORDS = new Set(["REPLACE", "IF"]);
const OPERATOR_FUNCTION_KEYWORDS = new Set(["LIKE", "GLOB", "REGEXP", "MATCH"]);
/** A name after these, then "(", is a table, view, index or module, not a function. */
const NAME_INTRODUCERS = new Set(["INTO", "TABLE", "VIEW", "EXISTS", "REFERENCES", "USING"]);

function isWordStart(c: string): boolean {
  return /[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80;
}
function isWordPart(c: string): boolean {
  return /[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) >= 0x80;
}

/** Index after a quoted run starting at `i` (the opening quote), doubled closers escaped. */
function skipQuoted(sql: string, i: number, close: string, doubled: boolean): number {
  let j = i + 1;
  while (j < sql.length) {
    if (sql[j] === close) {
      if (doubled && sql[j + 1] === close) j += 2;
      else return j + 1;
    } else j++;
  }
  return j;
}

function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const push = (kind: TokenKind, text: string, start: number) =>
    tokens.push({ kind, text, raw: sql.slice(start, i), start });
  while (i < sql.length) {
    const c = sql[i]!;
    const start = i;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (c === "'") {
      i = skipQuoted(sql, i, "'", true);
      push("literal", "'", start);
    } else if ((c === "x" || c === "X") && sql[i + 1] === "'") {
      i = skipQuoted(sql, i + 1, "'", true);
      push("literal", "X'", start);
    } else if (c === '"' || c === "`") {
      i = skipQuoted(sql, i, c, true);
      push("quoted", sql.slice(start + 1, i - 1).replaceAll(c + c, c), start);
    } else if (c === "[") {
      i = skipQuoted(sql, i, "]", false);
      push("quoted", sql.slice(start + 1, i - 1), start);
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(sql[i + 1] ?? ""))) {
      i++;
      while (i < sql.length) {
        const d = sql[i]!;
        if (/[0-9A-Za-z_.]/.test(d)) i++;
        else if (
          (d === "+" || d === "-") &&
          /[eE]/.test(sql[i - 1]!) &&
          !/^0[xX]/.test(sql.slice(start, i))
        )
          i++;
        else break;
      }
      push("literal", sql.slice(start, i), start);
    } else if (c === "?") {
      i++;
      while (i < sql.length && /[0-9]/.test(sql[i]!)) i++;
      push("variable", sql.slice(start, i), start);
    } else if ((c === ":" || c === "@" || c === "$") && isWordPart(sql[i + 1] ?? " ")) {
      i++;
      while (i < sql.length && isWordPart(sql[i]!)) i++;
      push("variable", sql.slice(start, i), start);
    } else if (isWordStart(c)) {
      while (i < sql.length && isWordPart(sql[i]!)) i++;
      push("word", sql.slice(start, i).toUpperCase(), start);
    } else {
      i++;
      push("punct", c, start);
    }
  }
  return tokens;
}

interface FunctionCall {
  /** As written (case kept). */
  name: string;
  args: number;
  /** Character index of the name in the SQL text. */
  offset: number;
}

export interface SqlShape {
  calls: FunctionCall[];
  /** The highest parameter number the text uses (what SQLite checks against its limit). */
  variables: number;
}

function isKeyword(token: Token | undefined, ...words: string[]): boolean {
  return (
    token?.kind === "word" &&
    KEYWORDS.has(token.text) &&
    (!words.length || words.includes(token.text))
  );
}

/** True for a token that ends an operand, so a LIKE after it is the operator, not like(). */
function endsOperand(token: Token | undefined): boolean {
  if (!token) return false;
  if (token.kind === "punct") return token.text === ")" || token.text === "*";
  if (token.kind === "word") {
    return (
      !KEYWORDS.has(token.text) ||
      ["NULL", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP"].includes(token.text)
    );
  }
  return true;
}

/**
 * Function calls with their argument counts, and the parameter count, of SQL text. Nested calls,
 * string literals, quoted names and comments are handled; `IN (...)`, `VALUES (...)`, column
 * lists (INSERT INTO t (...), CREATE TABLE/INDEX/VIEW, REFERENCES, a CTE's `name (...) AS`),
 * `OVER (...)`, `FILTER (...)` and subqueries are not calls. An aggregate's `ORDER BY` terms are
 * not arguments. Table-valued functions in FROM (json_each(?)) count as calls.
 */
export function sqlShape(sql: string): SqlShape {
  const tokens = tokenize(sql);
  const calls: FunctionCall[] = [];
  interface Frame {
    call: FunctionCall | null;
    commas: number;
    empty: boolean;
    /** Only "*" so far: count(*) has no arguments. */
    star: boolean;
    counting: boolean;
  }
  const stack: Frame[] = [];
  let variables = 0;
  const named = new Map<string, number>();
  let statementStart = 0;
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t]!;
    const frame = stack[stack.length - 1];
    if (token.kind === "variable") {
      if (token.text === "?") variables++;
      else if (token.text.startsWith("?"))
        variables = Math.max(variables, Number(token.text.slice(1)));
      else if (!named.has(token.text)) named.set(token.text, ++variables);
    }
    if (token.kind === "punct" && token.text === ";" && stack.length === 0) {
      statementStart = t + 1;
      continue;
    }
    if (token.kind === "punct" && token.text === "(") {
      if (frame) frame.empty = frame.star = false;
      stack.push({
        call: callBefore(tokens, t, statementStart),
        commas: 0,
        empty: true,
        star: false,
        counting: true,
      });
      continue;
    }
    if (token.kind === "punct" && token.text === ")") {
      const closed = stack.pop();
      if (closed?.call) {
        closed.call.args = closed.empty || closed.star ? 0 : closed.commas + 1;
        if (!isCteColumnList(tokens, t)) calls.push(closed.call);
      }
      continue;
    }
    if (!frame) continue;
    if (token.kind === "punct" && token.text === ",") {
      if (frame.counting) frame.commas++;
      frame.star = false;
      continue;
    }
    frame.star = frame.empty && token.kind === "punct" && token.text === "*";
    if (frame.empty && isKeyword(token, "DISTINCT", "ALL")) continue;
    // group_concat(x, ',' ORDER BY a, b): the ORDER BY terms are not arguments.
    if (isKeyword(token, "ORDER") && isKeyword(tokens[t + 1], "BY")) frame.counting = false;
    frame.empty = false;
  }
  calls.sort((a, b) => a.offset - b.offset);
  return { calls, variables };
}

/** The call a "(" at `t` opens, or null when the parenthesis is syntax. */
function callBefore(tokens: Token[], t: number, statementStart: number): FunctionCall | null {
  const name = tokens[t - 1];
  if (!name || t - 1 < statementStart) return null;
  if (name.kind !== "word" && name.kind !== "quoted") return null;
  const before = t - 2 >= statementStart ? tokens[t - 2] : undefined;
  if (name.kind === "word" && KEYWORDS.has(name.text)) {
    if (FUNCTION_KEYWORDS.has(name.text)) {
      // replace( and if( are calls; INSERT OR REPLACE INTO and IF NOT EXISTS have no "(".
    } else if (OPERATOR_FUNCTION_KEYWORDS.has(name.text)) {
      if (endsOperand(before) || isKeyword(before, "NOT")) return null;
    } else return null;
  }
  // schema.table ( ... ): SQLite has no qualified function names.
  if (before?.kind === "punct" && before.text === ".") return null;
  if (before && isKeyword(before) && NAME_INTRODUCERS.has(before.text)) return null;
  // CREATE [UNIQUE] INDEX i ON t (columns)
  if (isKeyword(before, "ON")) {
    const statement = tokens.slice(statementStart, t);
    if (isKeyword(statement[0], "CREATE") && statement.some((k) => isKeyword(k, "INDEX"))) {
      return null;
    }
  }
  return { name: name.kind === "quoted" ? name.text : name.raw, args: 0, offset: name.start };
}

/** `name (a, b) AS (` / `AS MATERIALIZED` / `AS NOT MATERIALIZED`: a CTE's columns. */
function isCteColumnList(tokens: Token[], close: number): boolean {
  if (!isKeyword(tokens[close + 1], "AS")) return false;
  const after = tokens[close + 2];
  return (
    (after?.kind === "punct" && after.text === "(") ||
    isKeyword(after, "MATERIALIZED", "NOT", "SELECT", "VALUES", "WITH")
  );
}

// SQL texts repeat (the same few hundred statements run thousands of times): remember each
// short text's shape.
const shapes = new Map<string, SqlShape>();
function cachedShape(sql: string): SqlShape {
  let shape = shapes.get(sql);
  if (!shape) {
    shape = sqlShape(sql);
    if (sql.length <= 10_000) {
      if (shapes.size >= 2_000) shapes.clear();
      shapes.set(sql, shape);
    }
  }
  return shape;
}

/** The function calls of SQL text with their argument counts, in order (for tests). */
export function functionCalls(sql: string): { name: string; args: number }[] {
  return cachedShape(sql).calls.map(({ name, args }) => ({ name, args }));
}

/**
 * An error like the platform's (a plain Error with SQLite's message and code), followed by the
 * limit and where the guard lives.
 */
function limitError(platformMessage: string, detail: string): Error {
  return new Error(`${platformMessage} (production limit: ${detail}; checked by ${SOURCE})`);
}

/** Throws as the platform would if the statement crosses a production limit. */
export function checkStatement(query: string, bindings: readonly unknown[]): void {
  const limits = PRODUCTION_SQL_LIMITS;
  const text = String(query);
  const sqlBytes = text.length * 3 <= limits.maxSqlBytes ? text.length : utf8Length(text);
  if (sqlBytes > limits.maxSqlBytes) {
    throw limitError(
      "statement too long: SQLITE_TOOBIG",
      `at most ${grouped(limits.maxSqlBytes)} bytes of SQL text per statement; this one has ${grouped(sqlBytes)}`,
    );
  }
  const shape = cachedShape(text);
  const parameters = Math.max(shape.variables, bindings.length);
  if (parameters > limits.maxParameters) {
    throw limitError(
      "too many SQL variables: SQLITE_ERROR",
      `at most ${limits.maxParameters} bound parameters per statement; this one has ${parameters}`,
    );
  }
  const call = shape.calls.find((c) => c.args > limits.maxFunctionArgs);
  if (call) {
    const offset = utf8Length(text.slice(0, call.offset));
    throw limitError(
      `too many arguments on function ${call.name} at offset ${offset}: SQLITE_ERROR`,
      `at most ${limits.maxFunctionArgs} arguments per SQL function call; this call has ${call.args}`,
    );
  }
  for (let i = 0; i < bindings.length; i++) {
    const size = boundValueBytes(bindings[i]);
    if (size && size.bytes > limits.maxValueBytes) {
      throw limitError(
        "string or blob too big: SQLITE_TOOBIG",
        `at most ${grouped(limits.maxValueBytes)} bytes per string or BLOB; bound parameter ${i + 1} ` +
          `is a ${size.kind} of ${grouped(size.bytes)}${size.kind === "string" ? " UTF-8" : ""} bytes`,
      );
    }
  }
}

type Exec = SqlStorage["exec"];

/** Wraps `exec` of a SqlStorage prototype (once). Returns false if it was already guarded. */
function guardSqlStoragePrototype(prototype: SqlStorage): boolean {
  const original = prototype.exec as Exec & { [GUARD]?: true };
  if (original[GUARD]) return false;
  const guarded = function (this: SqlStorage, query: string, ...bindings: any[]) {
    checkStatement(query, bindings);
    return original.call(this, query, ...bindings);
  } as Exec & { [GUARD]?: true };
  guarded[GUARD] = true;
  Object.defineProperty(prototype, "exec", {
    value: guarded,
    writable: true,
    enumerable: true,
    configurable: true,
  });
  return true;
}

/**
 * True if this SqlStorage's prototype `exec` runs through the guard (an own `exec` installed by a
 * wrapper such as the sql-meter calls it too).
 */
export function isProductionSqlGuarded(sql: SqlStorage): boolean {
  const prototype = Object.getPrototypeOf(sql) as SqlStorage | null;
  return Boolean(prototype && (prototype.exec as { [GUARD]?: true })[GUARD]);
}

/**
 * Reaches SqlStorage's prototype through one MemoryObject (SqlStorage is not a global) and guards
 * it. Every Durable Object instance of the main worker in this isolate shares that prototype.
 */
export async function installProductionSqlGuard(): Promise<void> {
  const prototype = await runInDurableObject(
    objectStub(GUARD_PROBE_OBJECT),
    (_instance: MemoryObject, state) => Object.getPrototypeOf(state.storage.sql) as SqlStorage,
  );
  guardSqlStoragePrototype(prototype);
}
