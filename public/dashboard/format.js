// How the dashboard writes numbers, sizes and times: short, and the same in every view.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 12345678 → "11.8 MiB". */
export function formatBytes(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** 1234567 → "1,234,567". */
export function formatCount(count) {
  return count.toLocaleString("en-US");
}

/** An ISO date or ms since the epoch → "2026-12-02 06:11:00" in the browser's time zone. */
export function formatDate(when) {
  if (when === null || when === undefined) return "";
  const date = new Date(when);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** ms since the epoch → "06:11:00.123", for the event log. */
export function formatClock(ms) {
  const date = new Date(ms);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return (
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
    pad(date.getMilliseconds(), 3)
  );
}

/** A duration in ms → "850 ms", "12.3 s", "4 min 5 s". */
export function formatAge(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.floor((ms % 60_000) / 1000)} s`;
}

/** A byte range → "[4096, +8192)". */
export function formatRange(offset, length) {
  return `[${offset}, +${length})`;
}

/** VM_SYNC_* bits (docs/protocol.md §6) → "SYNCHRONOUS|INVALIDATE". */
export function formatSyncFlags(flags) {
  if (flags === undefined || flags === null) return "";
  const names = [
    [0x01, "ASYNCHRONOUS"],
    [0x02, "SYNCHRONOUS"],
    [0x04, "INVALIDATE"],
  ];
  const set = names.filter(([bit]) => flags & bit).map(([, name]) => name);
  return set.length ? set.join("|") : String(flags);
}
