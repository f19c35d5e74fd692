/**
 * How many kernels an object keeps, and which it lets go (docs/security.md). Kernels that may
 * write get MAX_KERNELS; read-only kernels a quarter of that, their own, so readers can never
 * take a writer's place. When a kind is full, a new kernel takes the place of the oldest one of
 * its kind that is disconnected and holds nothing that must survive (no unreceived outbox
 * message, no outstanding synchronize, no lock request waiting on it, no open atomic group, not
 * stale): that kernel is forgotten, like one that terminated.
 *
 * A forgotten kernel may come back with pages cached. Once the object has let any kernel go,
 * every kernel it does not know is told `flush: true` at its first init: harmless for a new one
 * (it caches nothing yet), and what a returning one needs, since INVALIDATE no longer knows it.
 */
import { KERN_RESOURCE_SHORTAGE, ProtocolError } from "../schema";
import type { AtomicGroups } from "./groups";
import type { Kernels } from "./kernels";
import type { Limits } from "./limits";
import type { Meta } from "./meta";
import type { Residency } from "./residency";
import type { Sockets } from "./sockets";

/** The parts of the object the kernel budget reads and changes. */
export interface KernelBudgetParts {
  limits: Pick<Limits, "maxKernels">;
  kernels: Kernels;
  sockets: Sockets;
  meta: Meta;
  residency: Residency;
  groups: AtomicGroups;
}

/** Read-only kernels an object keeps: a quarter of MAX_KERNELS, at least one. */
export function readerBudget(maxKernels: number): number {
  return Math.max(1, Math.floor(maxKernels / 4));
}

/**
 * Makes room for a kernel the object does not know yet, forgetting a reclaimable one of the same
 * kind if that kind is full; throws `too_many_kernels` when none can go.
 *
 * @example admitNewKernel(parts, session.rights.includes("write"));
 */
export function admitNewKernel(parts: KernelBudgetParts, writer: boolean): void {
  const limit = writer ? parts.limits.maxKernels : readerBudget(parts.limits.maxKernels);
  if (parts.kernels.countOfKind(writer) < limit) return;
  // A few candidates suffice: only connected ones are passed over, and sockets are few.
  const candidates = parts.kernels.reclaimable(writer, limit);
  const gone = candidates.find((kernel) => !parts.sockets.hasSocket(kernel));
  if (gone === undefined) {
    const kind = writer
      ? `${limit} kernels that may write (MAX_KERNELS)`
      : `${limit} read-only kernels (a quarter of MAX_KERNELS)`;
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "too_many_kernels",
      `the object already has ${kind}, each connected or holding outbox messages or ` +
        `synchronize requests; terminate one first`,
    );
  }
  forgetKernel(parts, gone);
  parts.meta.set("kernels_reclaimed", 1);
}

/** True once the object has let a kernel go: unknown kernels must then flush at their init. */
export function mayHaveForgotten(meta: Meta): boolean {
  return meta.get<number>("kernels_reclaimed") === 1;
}

/**
 * Forgets a kernel that holds nothing: its record, what it was known to cache, and the numbers
 * of groups a refusal discarded (docs/protocol.md §12).
 */
function forgetKernel(parts: KernelBudgetParts, kernel: string): void {
  parts.kernels.forget(kernel);
  parts.residency.forgetAll(kernel);
  parts.groups.forget(kernel);
}
