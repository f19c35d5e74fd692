/**
 * The CLI's one error boundary (CONTRIBUTING.md §5): every failure becomes one line on stderr (or one
 * JSON object with --json) and one exit code from `exit-codes.ts`. Commands throw; only
 * `describeFailure` decides what the user sees.
 */
import * as schema from "../../schema";
import { ConnectionClosedError, KernReturnError } from "../errors";
import { EXIT, type ExitCode } from "./exit-codes";

/** An error the CLI raises itself, with the exit code it means. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export interface Failure {
  exitCode: ExitCode;
  message: string;
  /** Present for kern_return errors. */
  kernReturn?: { value: number; name: string; code: string };
}

/** Socket-level error codes that mean "the service is not there", as Node's fetch reports them. */
const UNREACHABLE_REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "timed out",
  UND_ERR_CONNECT_TIMEOUT: "timed out connecting",
  UND_ERR_SOCKET: "connection closed by the other side",
};

/** @example describeFailure(error, "http://127.0.0.1:8787").exitCode // 2 when refused */
export function describeFailure(error: unknown, url: string): Failure {
  if (error instanceof CliError) return { exitCode: error.exitCode, message: error.message };
  if (error instanceof KernReturnError) {
    const name = kernReturnName(error.kernReturn);
    return {
      exitCode: EXIT.KERN_ERROR,
      message: `${name}: ${error.message} (${error.code})`,
      kernReturn: { value: error.kernReturn, name, code: error.code },
    };
  }
  const code = networkErrorCode(error);
  if (code) return unreachable(url, `${UNREACHABLE_REASONS[code]} (${code})`);
  if (error instanceof TypeError && error.message === "fetch failed") {
    // fetch rejects only for network errors; some carry no code (undici's "bad port").
    const cause = (error as { cause?: unknown }).cause;
    return unreachable(url, cause instanceof Error ? cause.message : "fetch failed");
  }
  if (error instanceof ConnectionClosedError) {
    return { exitCode: EXIT.FAILURE, message: error.message };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { exitCode: EXIT.FAILURE, message };
}

/** The message and code for a service that cannot be reached at `url`. */
export function unreachable(url: string, reason: string): Failure {
  return {
    exitCode: EXIT.UNREACHABLE,
    message: `cannot reach the edgepager service at ${url}: ${reason}`,
  };
}

/** `KERN_INVALID_ADDRESS` for 1, … (docs/protocol.md §7); unknown values read `KERN_<n>`. */
function kernReturnName(value: number): string {
  for (const [name, constant] of Object.entries(schema)) {
    if (name.startsWith("KERN_") && constant === value) return name;
  }
  return `KERN_${value}`;
}

/** The socket error code behind a failed fetch: in `cause`, or in an AggregateError's errors. */
function networkErrorCode(error: unknown, depth = 0): string | null {
  if (typeof error !== "object" || error === null || depth > 4) return null;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && code in UNREACHABLE_REASONS) return code;
  for (const inner of (error as { errors?: unknown[] }).errors ?? []) {
    const found = networkErrorCode(inner, depth + 1);
    if (found) return found;
  }
  return networkErrorCode((error as { cause?: unknown }).cause, depth + 1);
}
