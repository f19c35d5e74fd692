/**
 * `allowOrigins()`: which web pages may use this service from a browser, by the `ALLOWED_ORIGINS`
 * var (docs/security.md "Browser origins"). It runs first, on every route.
 *
 * - No `Origin` header (curl, Node, the CLI, any non-browser client): untouched, unless the
 *   browser's Fetch Metadata says it comes from another site (`Sec-Fetch-Site: cross-site` or
 *   `same-site`: an `<img>`, a link, a no-cors `fetch`, whose origin the browser hides): refused
 *   like a foreign origin, unless `ALLOWED_ORIGINS` is `*`.
 * - An `Origin` not in the list, `null` included, is refused with 403 (`origin_not_allowed`),
 *   whatever the method and whether authentication is on: a WebSocket upgrade, and the "simple"
 *   cross-origin requests a browser sends without asking first (a form-like `POST …/synchronize`),
 *   never reach the object. The refusal has no CORS headers, so the page cannot read it either.
 *   There is no exception for the Worker's own origin: it serves no pages, and a DNS-rebound page
 *   would claim that origin.
 * - An `Origin` in the list: preflights (`OPTIONS`) are answered, and every response, errors
 *   included, carries `Access-Control-Allow-Origin` with that origin and `Vary: Origin`.
 *   Credentials travel in `Authorization`, never in cookies, so there is no
 *   `Access-Control-Allow-Credentials`. WebSocket upgrades need no CORS and pass on as they are.
 *
 * `ALLOWED_ORIGINS` is a comma-separated list of exact origins (`scheme://host[:port]`, as a
 * browser sends them: `http://localhost:5173,https://app.example.com`); empty allows no browser
 * origin. `*` (alone) allows every origin, and only with authentication on (`AUTH_SECRET` set):
 * without it, `*` would let any web page drive the service. A malformed value fails every
 * request with 500 (`bad_config`) naming the entry, so a typo is seen at once, from curl too.
 */
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { KERN_FAILURE, KERN_PROTECTION_FAILURE, ProtocolError } from "../schema";
import type { AppEnv } from "./app-env";

/** How long a browser may reuse a preflight's answer: Chromium's cap, two hours. */
export const PREFLIGHT_MAX_AGE_SECONDS = 7200;

/** The methods of the HTTP API (docs/protocol.md §9), and the request headers its clients send. */
const ALLOW_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"];
const ALLOW_HEADERS = ["Authorization", "Content-Type"];

/** What `ALLOWED_ORIGINS` allows: every origin (`*`), or exactly these. */
export type AllowedOrigins = "*" | ReadonlySet<string>;

export function allowOrigins() {
  const corsForAllowed = cors({
    // Reached only for an origin already found in the list: echo it.
    origin: (origin) => origin,
    allowMethods: ALLOW_METHODS,
    allowHeaders: ALLOW_HEADERS,
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
  });
  return createMiddleware<AppEnv>(async (c, next) => {
    // Checked on every request, so a bad value shows on the first one, browser or not.
    const allowed = readAllowedOrigins(c.env);
    const origin = c.req.header("origin");
    const upgrade = c.req.header("upgrade")?.toLowerCase() === "websocket";
    if (origin === undefined) {
      // A browser hides the origin of a no-cors GET (an <img>, a link, fetch in no-cors mode)
      // but still says, in Fetch Metadata, that it comes from another site.
      const site = c.req.header("sec-fetch-site");
      if (allowed !== "*" && (site === "cross-site" || site === "same-site")) {
        throw new ProtocolError(
          KERN_PROTECTION_FAILURE,
          "origin_not_allowed",
          `a ${site} browser request without an Origin is refused: only pages of the origins in ` +
            "ALLOWED_ORIGINS may use this service, with CORS requests",
        );
      }
      await next();
      // The answer differs with Origin: a cache must not serve this one to a page.
      if (!upgrade) c.header("Vary", "Origin", { append: true });
      return;
    }
    if (allowed !== "*" && !allowed.has(origin)) {
      throw new ProtocolError(
        KERN_PROTECTION_FAILURE,
        "origin_not_allowed",
        `requests from the web origin ${JSON.stringify(origin)} are refused: it is not in ` +
          "ALLOWED_ORIGINS (wrangler.toml var; non-browser clients send no Origin)",
      );
    }
    if (upgrade) return next();
    return corsForAllowed(c, next);
  });
}

let cached: { raw: string; authOn: boolean; allowed: AllowedOrigins } | null = null;

/**
 * Parses and checks `ALLOWED_ORIGINS`; throws `bad_config` naming what is wrong.
 *
 * @example readAllowedOrigins(env); // Set { "http://localhost:5173" }
 */
export function readAllowedOrigins(env: Pick<Env, "ALLOWED_ORIGINS" | "AUTH_SECRET">) {
  const raw = env.ALLOWED_ORIGINS ?? "";
  const authOn = Boolean(env.AUTH_SECRET);
  if (cached?.raw === raw && cached.authOn === authOn) return cached.allowed;
  const allowed = parseAllowedOrigins(raw, authOn);
  cached = { raw, authOn, allowed };
  return allowed;
}

function parseAllowedOrigins(raw: string, authOn: boolean): AllowedOrigins {
  if (typeof raw !== "string") throw badConfig(`must be a string, got ${typeof raw}`);
  const entries = raw
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  if (entries.includes("*")) {
    if (entries.length > 1) throw badConfig('"*" must stand alone, not in a list of origins');
    if (!authOn) {
      throw badConfig(
        '"*" needs authentication on (AUTH_SECRET set): without it any web page could drive ' +
          "this service; list the exact origins instead",
      );
    }
    return "*";
  }
  for (const entry of entries) {
    let canonical: string | null = null;
    try {
      const url = new URL(entry);
      if (url.protocol === "http:" || url.protocol === "https:") canonical = url.origin;
    } catch {
      // Not a URL at all: reported below.
    }
    if (canonical !== entry) {
      throw badConfig(
        `${JSON.stringify(entry)} is not an origin as browsers send it: write ` +
          `scheme://host[:port], http or https, lower case, no default port, no path or slash` +
          (canonical ? ` (here ${JSON.stringify(canonical)})` : ""),
      );
    }
  }
  return new Set(entries);
}

function badConfig(rule: string): ProtocolError {
  return new ProtocolError(KERN_FAILURE, "bad_config", `wrangler.toml var ALLOWED_ORIGINS ${rule}`);
}
