/**
 * `edgepager token`: mints a capability token (docs/security.md) with the deployment's
 * AUTH_SECRET, taken from --secret, the AUTH_SECRET environment variable, or `.dev.vars` in the
 * current directory (where `wrangler dev` reads it). Works offline: tokens are signed here.
 */
import { existsSync, readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { TokenError, parseRights, signToken, type Right } from "../../../schema";
import { globalsOf } from "../options";
import { printResult } from "../output";

export function registerToken(program: Command): void {
  program
    .command("token")
    .summary("mint a capability token")
    .description(
      "Mint a token granting RIGHTS on the objects matching PATTERN (a name, or a prefix ending " +
        "in *) for TTL. Signed with AUTH_SECRET from --secret, the environment, or .dev.vars.",
    )
    .requiredOption("--object <pattern>", "object name or prefix* the token covers", parsePattern)
    .option("--rights <list>", "comma-separated: read, write, admin", parseRightsOption, [
      "read",
    ] as Right[])
    .option("--ttl <duration>", "lifetime: 90s, 30m, 1h, 7d", parseTtl, 3600)
    .option("--secret <secret>", "the HMAC secret (default: $AUTH_SECRET or .dev.vars)")
    .action(
      async (
        options: { object: string; rights: Right[]; ttl: number; secret?: string },
        command: Command,
      ) => {
        const globals = globalsOf(command);
        const secret = options.secret ?? process.env.AUTH_SECRET ?? secretFromDevVars();
        if (!secret) {
          command.error(
            "error: no secret: pass --secret, set AUTH_SECRET, or put AUTH_SECRET=… in .dev.vars",
            { exitCode: 64 },
          );
        }
        const exp = Math.floor(Date.now() / 1000) + options.ttl;
        const grant = { object: options.object, rights: options.rights, exp };
        const token = await signToken(secret!, grant);
        printResult(globals.json, () => token, { token, ...grant });
      },
    );
}

function parsePattern(value: string): string {
  if (!/^[A-Za-z0-9._-]*\*?$/.test(value) || value === "") {
    throw new InvalidArgumentError(
      "expected an object name, or a prefix followed by * (or * alone).",
    );
  }
  return value;
}

function parseRightsOption(value: string): Right[] {
  try {
    return parseRights(value);
  } catch (error) {
    if (error instanceof TokenError) throw new InvalidArgumentError(error.message);
    throw error;
  }
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `30m`, `1h`, `7d` → seconds. */
function parseTtl(value: string): number {
  const match = /^([0-9]+)([smhd])$/.exec(value);
  if (!match || Number(match[1]) === 0) {
    throw new InvalidArgumentError("expected a positive duration like 90s, 30m, 1h or 7d.");
  }
  return Number(match[1]) * UNIT_SECONDS[match[2]!]!;
}

function secretFromDevVars(): string | undefined {
  if (!existsSync(".dev.vars")) return undefined;
  const line = readFileSync(".dev.vars", "utf8")
    .split("\n")
    .find((l) => /^\s*AUTH_SECRET\s*=/.test(l));
  return (
    line
      ?.replace(/^\s*AUTH_SECRET\s*=\s*/, "")
      .replace(/^"(.*)"$/, "$1")
      .trim() || undefined
  );
}
