/**
 * The WebSocket upgrade of the control route (docs/protocol.md §2), forwarded raw by the Worker: the
 * object accepts the socket itself so it can hibernate, and keeps in its attachment what the
 * caller's token grants, for the per-message checks of the socket loop. A refusal is answered
 * like any HTTP error, with the status of its code (429 `too_many_errors`, 503
 * `too_many_kernels`, …; 500 for anything unexpected).
 */
import { GRANT_HEADER, RIGHTS, errorResponse, parseKernelId, type Right } from "../schema";
import type { SocketOperations } from "./handlers/transport-operations";
import type { SocketGrant } from "./sockets";

export function handleUpgrade(pager: SocketOperations, request: Request): Response {
  try {
    const kernel = parseKernelId(new URL(request.url).searchParams.get("kernel"));
    const grant = readGrant(request.headers.get(GRANT_HEADER));
    const webSocket = pager.acceptSocket(kernel, grant);
    // The alarm closes the socket when its token expires (durable/sockets.ts).
    pager.afterChange();
    return new Response(null, { status: 101, webSocket });
  } catch (error) {
    return errorResponse(error, "control socket upgrade failed");
  }
}

/** The Worker's grant header; anything else grants nothing (fail closed). */
function readGrant(header: string | null): SocketGrant {
  try {
    const grant = JSON.parse(header ?? "") as SocketGrant;
    const rights = Array.isArray(grant.rights)
      ? grant.rights.filter((r): r is Right => (RIGHTS as string[]).includes(r))
      : [];
    const exp = typeof grant.exp === "number" ? grant.exp : 0;
    const caller = typeof grant.caller === "string" ? grant.caller.slice(0, 100) : undefined;
    return caller === undefined ? { rights, exp } : { rights, exp, caller };
  } catch {
    return { rights: [], exp: 0 };
  }
}
