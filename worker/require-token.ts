/**
 * `requireToken()`: checks the capability token of every object request (docs/security.md).
 * The token comes as `Authorization: Bearer …`, or as `access_token` on a control socket's
 * upgrade and an event stream only (browsers cannot set their headers); `access_token` on any
 * other request → 401.
 * Missing or bad → 401; a token for other objects → 403. With no `AUTH_SECRET` auth is off
 * (local development, said plainly in the log); `failClosed()` runs first and refuses that
 * where the deployment requires authentication.
 */
import { createMiddleware } from "hono/factory";
import {
  HTTP_PATHS,
  KERN_PROTECTION_FAILURE,
  ProtocolError,
  RIGHTS,
  TokenError,
  grantCovers,
  isPathOf,
  verifyToken,
  type Grant,
} from "../schema";
import type { AppEnv } from "./app-env";

let warnedAuthOff = false;

export function requireToken() {
  return createMiddleware<AppEnv>(async (c, next) => {
    const secret = c.env.AUTH_SECRET;
    if (!secret) {
      if (!warnedAuthOff) {
        warnedAuthOff = true;
        console.warn("edgepager: authentication is OFF (no AUTH_SECRET, REQUIRE_AUTH is not true)");
      }
      c.set("grant", OPEN_GRANT);
      return next();
    }
    const queryToken = c.req.query("access_token");
    if (queryToken !== undefined && !takesQueryToken(c.req.path, c.req.header("upgrade"))) {
      // A token in a URL ends up in logs; browsers need it only where they cannot set headers.
      throw new ProtocolError(
        KERN_PROTECTION_FAILURE,
        "unauthorized",
        `access_token is accepted only on a WebSocket upgrade of ${HTTP_PATHS.control} and on ` +
          `${HTTP_PATHS.events}; send Authorization: Bearer <token>`,
      );
    }
    const token = bearerToken(c.req.header("authorization")) ?? queryToken;
    if (!token) {
      throw new ProtocolError(
        KERN_PROTECTION_FAILURE,
        "unauthorized",
        "a token is required: Authorization: Bearer <token>, or access_token=<token> for sockets",
      );
    }
    let grant: Grant;
    try {
      grant = await verifyToken(secret, token, Math.floor(Date.now() / 1000));
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      throw new ProtocolError(KERN_PROTECTION_FAILURE, "unauthorized", error.message);
    }
    // The directory has no name in its path: it lists only what the grant covers.
    const name = c.req.param("name");
    if (name !== undefined && !grantCovers(grant, name)) {
      throw new ProtocolError(
        KERN_PROTECTION_FAILURE,
        "forbidden",
        `the token covers objects "${grant.object}", not "${name}"`,
      );
    }
    c.set("grant", grant);
    await next();
  });
}

/** What every request may do when auth is off. */
const OPEN_GRANT: Grant = { object: "*", rights: [...RIGHTS], exp: Number.MAX_SAFE_INTEGER };

/**
 * The requests that may carry their token as `access_token`, those a browser cannot add a header
 * to: a control socket's upgrade, and an event stream (`EventSource`).
 */
function takesQueryToken(path: string, upgrade: string | undefined): boolean {
  if (isPathOf(HTTP_PATHS.events, path)) return true;
  return isPathOf(HTTP_PATHS.control, path) && upgrade?.toLowerCase() === "websocket";
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)$/i);
  return match?.[1];
}
