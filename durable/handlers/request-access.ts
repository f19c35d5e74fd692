/**
 * What data_request and data_unlock share on a coherent object (docs/protocol.md §10.3,
 * docs/protocol.md §10.4): the kernel asks to hold `span`, for writing when `desired_access` has
 * VM_PROT_WRITE, else for reading; answered at once or once the holders in its way gave way.
 */
import { VM_PROT_WRITE, type PageSpan } from "../../schema";
import type { GrantKind } from "../coherence";
import type { HandlerContext } from "./context";

export function requestAccess(
  ctx: HandlerContext,
  kind: Exclude<GrantKind, "http">,
  message: { id: number; offset: number; length: number; desired_access: number },
  span: PageSpan,
): void {
  ctx.pager.requestAccess({
    seqno: ctx.seqno,
    kernel: ctx.kernel,
    kind,
    id: message.id,
    offset: message.offset,
    length: message.length,
    first_page: span.first,
    end_page: span.end,
    write: (message.desired_access & VM_PROT_WRITE) !== 0 ? 1 : 0,
  });
}
