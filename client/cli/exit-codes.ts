/**
 * The CLI's exit codes, in one place: scripts branch on them, so each outcome has its own number
 * and they never change meaning. `edgepager --help` prints this table (and so docs/cli.md does).
 */

export const EXIT = {
  /** Done. */
  OK: 0,
  /** Anything else: the connection was lost for good, the object was deleted meanwhile, a bug. */
  FAILURE: 1,
  /** The service could not be reached: connection refused, unknown host, timed out. */
  UNREACHABLE: 2,
  /** The manager refused the request with a kern_return (printed as its KERN_… name). */
  KERN_ERROR: 3,
  /** The local file could not be read (put) or written (get --output). */
  FILE_ERROR: 4,
  /** SQLite refused a statement of `edgepager sql` (syntax, constraint, …). */
  SQL_ERROR: 5,
  /** Bad command line: unknown command or option, a malformed number or name (EX_USAGE). */
  USAGE: 64,
  /** Stopped by Ctrl-C (128 + SIGINT); `watch` ends this way normally and exits 0. */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The table shown at the end of `edgepager --help`. */
export const EXIT_CODES_HELP = `Exit codes:
  ${EXIT.OK}    done
  ${EXIT.FAILURE}    failure: connection lost for good, object deleted meanwhile, internal error
  ${EXIT.UNREACHABLE}    cannot reach the edgepager service (refused, unknown host, timeout)
  ${EXIT.KERN_ERROR}    the manager answered a kern_return error (KERN_... name printed)
  ${EXIT.FILE_ERROR}    cannot read the input file or write the output file
  ${EXIT.SQL_ERROR}    SQLite refused a statement of sql (its message printed)
  ${EXIT.USAGE}   bad command line (EX_USAGE)
  ${EXIT.INTERRUPTED}  interrupted by Ctrl-C (watch exits 0)`;
