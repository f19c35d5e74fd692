/**
 * The per-kernel outbox of docs/protocol.md §3: completions, lock requests and synchronize failures,
 * numbered by mid and kept until the kernel reports them received, so each takes effect at the
 * kernel exactly once across restarts and reconnects.
 */
import {
  KERN_INVALID_ARGUMENT,
  KERN_RESOURCE_SHORTAGE,
  ProtocolError,
  type OutboxMessage,
  type UnnumberedOutboxMessage,
} from "../schema";
import type { Kernels } from "./kernels";
import type { Mail } from "./mail";

/**
 * Messages one kernel may have in its outbox, not yet reported received, counting the
 * completions its outstanding synchronize requests will add (docs/security.md). Past it, a
 * request that would add one gets KERN_RESOURCE_SHORTAGE: the kernel must report what it has.
 */
export const OUTBOX_MAX_PER_KERNEL = 1024;

export class Outbox {
  constructor(
    private readonly sql: SqlStorage,
    private readonly kernels: Kernels,
    private readonly mail: Mail,
  ) {}

  /** Numbers the message, keeps it, and sends it now if the kernel is connected. */
  push(kernel: string, message: UnnumberedOutboxMessage): OutboxMessage {
    const mid = this.kernels.takeMid(kernel);
    const numbered = { ...message, mid } as OutboxMessage;
    this.sql.exec(
      `INSERT INTO outbox (kernel, mid, message) VALUES (?, ?, ?)`,
      kernel,
      mid,
      JSON.stringify(numbered),
    );
    this.mail.post(kernel, numbered);
    return numbered;
  }

  /**
   * Refuses a request of `kernel` that would add a message to its outbox when the outbox, with
   * the `pending` messages already promised to it (completions of outstanding synchronizes),
   * is full.
   */
  checkRoom(kernel: string, pending = 0): void {
    const held = this.sql
      .exec<{ n: number }>(`SELECT count(*) AS n FROM outbox WHERE kernel = ?`, kernel)
      .one().n;
    if (held + pending < OUTBOX_MAX_PER_KERNEL) return;
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "outbox_full",
      `this kernel has ${held} outbox messages not reported received and ${pending} to come ` +
        `(at most ${OUTBOX_MAX_PER_KERNEL}): report them received (memory_object_received, or ` +
        `received_mid at init) before asking for more`,
    );
  }

  /**
   * The kernel has every message up to `mid`. A mid above the last one sent is refused: taking it
   * would drop messages the kernel never saw (a client that reuses a forgotten id must reset).
   */
  acknowledge(kernel: string, mid: number, field = "mid"): void {
    const lastMid = (this.kernels.get(kernel)?.next_mid ?? 1) - 1;
    if (mid > lastMid) {
      throw new ProtocolError(
        KERN_INVALID_ARGUMENT,
        "mid_ahead",
        `${field} (${mid}) is above the last mid sent to this kernel (${lastMid})`,
      );
    }
    this.sql.exec(`DELETE FROM outbox WHERE kernel = ? AND mid <= ?`, kernel, mid);
  }

  /** Sends again, in mid order, every kept message (those above the kernel's received_mid). */
  resend(to: WebSocket, kernel: string): void {
    const rows = this.sql
      .exec<{ message: string }>(`SELECT message FROM outbox WHERE kernel = ? ORDER BY mid`, kernel)
      .toArray();
    for (const row of rows) this.mail.post(to, JSON.parse(row.message) as OutboxMessage);
  }

  /** Drops queued lock requests that no longer need an answer (their kernel went stale). */
  withdrawLockRequests(kernel: string, lockIds: number[]): void {
    if (lockIds.length === 0) return;
    this.sql.exec(
      `DELETE FROM outbox WHERE kernel = ?
         AND json_extract(message, '$.type') = 'memory_object_lock_request'
         AND json_extract(message, '$.lock_id') IN (SELECT value FROM json_each(?))`,
      kernel,
      JSON.stringify(lockIds),
    );
  }

  forget(kernel: string): void {
    this.sql.exec(`DELETE FROM outbox WHERE kernel = ?`, kernel);
  }
}
