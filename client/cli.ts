#!/usr/bin/env node
/**
 * The `edgepager` executable (package.json "bin"): runs the command line, then exits with its
 * code once stdout has drained. Exiting explicitly also ends a control socket that is still
 * retrying after a command gave up on it (cli/kernel.ts).
 */
import { run } from "./cli/program";

const code = await run(process.argv);
process.stdout.write("", () => process.exit(code));
