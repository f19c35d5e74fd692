/**
 * Command-line values, parsed strictly before any request is made: a typo must fail as a usage
 * error (exit 64), never reach the manager as a different number. Also the global options every
 * command shares and the default kernel id.
 */
import { hostname } from "node:os";
import { InvalidArgumentError, type Command } from "commander";
import {
  VM_SYNC_ASYNCHRONOUS,
  VM_SYNC_CONTIGUOUS,
  VM_SYNC_DEACTIVATE,
  VM_SYNC_INVALIDATE,
  VM_SYNC_KILLPAGES,
  VM_SYNC_REUSABLEPAGES,
  VM_SYNC_SYNCHRONOUS,
  HTTP_KERNEL,
  parseKernelId as parseKernel,
  parseObjectName as parseName,
} from "../../schema";

export const DEFAULT_URL = "http://127.0.0.1:8787";

/** Options of the program itself, accepted before or after the command name. */
export interface GlobalOptions {
  url: string;
  token?: string;
  json: boolean;
}

/** The global options as seen from inside a command's action. */
export function globalsOf(command: Command): GlobalOptions {
  const options = command.optsWithGlobals<GlobalOptions>();
  return { ...options, json: options.json === true };
}

/**
 * A byte count or offset: decimal digits only, a safe integer. Rejects "12abc", "-1", "1e3",
 * "0x10" and "" (Number() and parseInt() each accept some of these).
 *
 * @example parseCount("4096") // 4096
 */
export function parseCount(value: string): number {
  if (!/^[0-9]+$/.test(value)) {
    throw new InvalidArgumentError("expected a non-negative integer (decimal digits only).");
  }
  const number = Number(value);
  if (!Number.isSafeInteger(number)) {
    throw new InvalidArgumentError("too large (more than 2^53 - 1).");
  }
  return number;
}

/** A count that must be at least 1. */
export function parsePositiveCount(value: string): number {
  const number = parseCount(value);
  if (number === 0) throw new InvalidArgumentError("must be at least 1.");
  return number;
}

/** An object name (docs/protocol.md §1), by the schema's rule; a usage error in the CLI's words. */
export function parseObjectName(value: string): string {
  try {
    return parseName(value);
  } catch {
    throw new InvalidArgumentError("an object name is 1-128 characters of A-Z a-z 0-9 . _ -");
  }
}

/** A kernel id (docs/protocol.md §1), by the schema's rule: 1–64 such characters, not `http`. */
export function parseKernelId(value: string): string {
  if (value === HTTP_KERNEL)
    throw new InvalidArgumentError('"http" is reserved for HTTP requests.');
  try {
    return parseKernel(value);
  } catch {
    throw new InvalidArgumentError("a kernel id is 1-64 characters of A-Z a-z 0-9 . _ -");
  }
}

/** The service's base URL: http or https. */
export function parseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError("expected a URL such as http://127.0.0.1:8787");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError("expected an http: or https: URL.");
  }
  return value.replace(/\/+$/, "");
}

/** Mach's sync_flags by name (docs/protocol.md §6.3). */
const SYNC_FLAG_BITS: Record<string, number> = {
  SYNCHRONOUS: VM_SYNC_SYNCHRONOUS,
  ASYNCHRONOUS: VM_SYNC_ASYNCHRONOUS,
  INVALIDATE: VM_SYNC_INVALIDATE,
  KILLPAGES: VM_SYNC_KILLPAGES,
  DEACTIVATE: VM_SYNC_DEACTIVATE,
  CONTIGUOUS: VM_SYNC_CONTIGUOUS,
  REUSABLEPAGES: VM_SYNC_REUSABLEPAGES,
};

/**
 * Comma-separated flag names, case-insensitive, with or without `VM_SYNC_`. Whether a
 * combination is allowed (not SYNCHRONOUS with ASYNCHRONOUS) is the manager's call.
 *
 * @example parseSyncFlags("synchronous,INVALIDATE") // 6
 */
export function parseSyncFlags(value: string): number {
  let flags = 0;
  for (const part of value.split(",")) {
    const name = part
      .trim()
      .toUpperCase()
      .replace(/^VM_SYNC_/, "");
    const bit = SYNC_FLAG_BITS[name];
    if (bit === undefined) {
      throw new InvalidArgumentError(
        `unknown flag "${part.trim()}"; expected ${Object.keys(SYNC_FLAG_BITS).join(", ")}.`,
      );
    }
    flags |= bit;
  }
  return flags;
}

/** `SYNCHRONOUS|INVALIDATE` for 6; bits without a name read as hex. */
export function syncFlagNames(flags: number): string {
  const names = Object.entries(SYNC_FLAG_BITS)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name);
  const unknown = flags & ~Object.values(SYNC_FLAG_BITS).reduce((a, b) => a | b, 0);
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  return names.length > 0 ? names.join("|") : "none";
}

/**
 * The kernel id a command connects as when `--kernel` is not given: `<prefix>-<host>-<pid>`.
 * It is stable for the life of the process, which is what the protocol needs (the same id on
 * every reconnect, so acks and outbox messages resume); unique among processes running at once,
 * so two CLI runs never replace each other's socket (close 4409); and it names the machine it
 * came from in `stat`'s kernel list. A run ends with memory_object_terminate, so the manager
 * forgets it: no state is meant to carry over to a later run.
 */
export function defaultKernelId(prefix: string): string {
  const pid = String(process.pid);
  const room = 64 - prefix.length - pid.length - 2;
  const host = hostname()
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .slice(0, Math.max(0, room));
  return host ? `${prefix}-${host}-${pid}` : `${prefix}-${pid}`;
}
