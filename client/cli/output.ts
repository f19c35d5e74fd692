/**
 * What commands print: a human line (or table) by default, one JSON value per result with
 * --json. Results go to stdout and diagnostics to stderr, so `--json | jq` and `get > file`
 * stay clean.
 */

/** Prints `data` as one JSON line with --json, else the human text. */
export function printResult(json: boolean, human: () => string, data: unknown): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${human()}\n`);
}

/** `16.0 MiB`, `512 B`: binary units, one decimal. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `1:05`, `0:07`: minutes and seconds (hours when needed). */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** Rows of cells as aligned columns (two spaces apart), first row a header. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) =>
    Math.max(...rows.map((row) => (row[column] ?? "").length)),
  );
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
