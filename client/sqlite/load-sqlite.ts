/**
 * Loads SQLite: the Asyncify build of wa-sqlite (`@journeyapps/wa-sqlite`), whose VFS methods may
 * await the network. In Node the build cannot fetch its own `.wasm` (it was built for the web), so
 * the bytes are read from the package and handed over; a browser's bundler or server serves the
 * `.wasm` beside the module, where the build looks for it (docs/sqlite.md).
 */
import SQLiteAsyncFactory from "@journeyapps/wa-sqlite/dist/wa-sqlite-async.mjs";
import * as SQLite from "@journeyapps/wa-sqlite";

/** One SQLite instance: its API and the Emscripten module a VFS registers with. */
export interface LoadedSqlite {
  sqlite3: SQLiteAPI;
  module: object;
}

let wasmBytes: Promise<Uint8Array | undefined> | null = null;

/** A fresh SQLite instance (one per database: the Asyncify build runs one call at a time). */
export async function loadSqlite(): Promise<LoadedSqlite> {
  wasmBytes ??= readWasmInNode();
  const wasmBinary = await wasmBytes;
  const module = (await SQLiteAsyncFactory(wasmBinary ? { wasmBinary } : {})) as object;
  return { sqlite3: SQLite.Factory(module), module };
}

async function readWasmInNode(): Promise<Uint8Array | undefined> {
  const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
    ?.node;
  if (!node) return undefined;
  const { readFile } = await import("node:fs/promises");
  const { createRequire } = await import("node:module");
  const require = createRequire(import.meta.url);
  return readFile(require.resolve("@journeyapps/wa-sqlite/dist/wa-sqlite-async.wasm"));
}
