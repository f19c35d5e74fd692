/**
 * `edgepager sql OBJECT [SQL]`: runs SQL on the SQLite database whose file is OBJECT
 * (docs/sqlite.md), and prints what each statement returns, as a table or (--json) one JSON
 * array of row objects per statement. The SQL comes from the argument or `--file`. It opens the
 * database as its one writer unless `--readonly`.
 */
import { readFile } from "node:fs/promises";
import { InvalidArgumentError, type Command } from "commander";
import { openDatabase, type ResultSet } from "../../sqlite";
import { EXIT } from "../exit-codes";
import { CliError } from "../failure";
import { globalsOf, parseObjectName } from "../options";
import { formatTable } from "../output";

interface SqlOptions {
  file?: string;
  readonly?: boolean;
  durability: "journal" | "r2";
}

export function registerSql(program: Command): void {
  program
    .command("sql")
    .summary("run SQL on the SQLite database stored in an object")
    .description(
      "Run SQL statements on the SQLite database whose file is the object (a database put " +
        "with `put` works too), and print the rows each statement returns. Opens the database " +
        "as its one writer, unless --readonly; commits are atomic groups (docs/sqlite.md).",
    )
    .argument("<object>", "object name (the database file)", parseObjectName)
    .argument("[sql]", "the SQL to run (or --file)")
    .option("-f, --file <path>", "read the SQL from a file")
    .option("--readonly", "open read-only: no writes, any number of readers at once")
    .option(
      "--durability <where>",
      "what a commit waits for: journal (durable in the object) or r2",
      parseDurability,
      "journal",
    )
    .action(
      async (object: string, sql: string | undefined, options: SqlOptions, command: Command) => {
        const globals = globalsOf(command);
        const text = await sqlOf(sql, options.file);
        const db = await openDatabase({
          url: globals.url,
          token: globals.token,
          object,
          readonly: options.readonly === true,
          durability: options.durability,
        });
        let results: ResultSet[];
        try {
          results = await db.results(text);
        } catch (error) {
          throw new CliError(
            EXIT.SQL_ERROR,
            error instanceof Error ? error.message : String(error),
          );
        } finally {
          await db.close();
        }
        for (const result of results) {
          process.stdout.write(
            `${globals.json ? JSON.stringify(rowsOf(result)) : tableOf(result)}\n`,
          );
        }
      },
    );
}

async function sqlOf(argument: string | undefined, file: string | undefined): Promise<string> {
  if ((argument === undefined) === (file === undefined)) {
    throw new CliError(EXIT.USAGE, "give the SQL either as an argument or with --file, not both");
  }
  if (argument !== undefined) return argument;
  try {
    return await readFile(file!, "utf8");
  } catch (error) {
    throw new CliError(EXIT.FILE_ERROR, `cannot read ${file}: ${(error as Error).message}`);
  }
}

function parseDurability(value: string): "journal" | "r2" {
  if (value !== "journal" && value !== "r2") {
    throw new InvalidArgumentError("must be journal or r2");
  }
  return value;
}

function rowsOf({ columns, rows }: ResultSet): Record<string, unknown>[] {
  return rows.map((row) => Object.fromEntries(columns.map((name, i) => [name, jsonValue(row[i])])));
}

/** A cell as JSON can carry it: integers past 2^53 as strings, blobs as hex. */
function jsonValue(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return `x'${Buffer.from(value).toString("hex")}'`;
  return value ?? null;
}

function tableOf({ columns, rows }: ResultSet): string {
  const cells = rows.map((row) =>
    row.map((value) => {
      const shown = jsonValue(value);
      return shown === null ? "NULL" : String(shown);
    }),
  );
  return formatTable([columns, ...cells]);
}
