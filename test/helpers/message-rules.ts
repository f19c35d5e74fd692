/**
 * The field rules of docs/protocol.md §1, docs/protocol.md §4 and docs/protocol.md §6.3, written out again independently of
 * schema/fields.ts, so the property and fuzz tests judge the validators against the documented
 * rules rather than against themselves.
 */
import type { Frame, KernelMessage } from "../../schema";

export type FieldRule =
  "positive" | "count" | "page_size" | "protection" | "boolean" | "sync_flags";

/** The fields of each kernel message and the rule each keeps (docs/protocol.md §4). */
export const FIELDS: Record<KernelMessage["type"], Record<string, FieldRule>> = {
  memory_object_init: { id: "positive", page_size: "page_size", received_mid: "count" },
  memory_object_data_request: {
    id: "positive",
    offset: "count",
    length: "count",
    desired_access: "protection",
  },
  memory_object_data_unlock: {
    id: "positive",
    offset: "count",
    length: "count",
    desired_access: "protection",
  },
  memory_object_data_return: {
    id: "positive",
    offset: "count",
    length: "count",
    dirty: "boolean",
    kernel_copy: "boolean",
  },
  memory_object_synchronize: {
    id: "positive",
    offset: "count",
    length: "count",
    sync_flags: "sync_flags",
  },
  memory_object_lock_completed: {
    id: "positive",
    lock_id: "positive",
    offset: "count",
    length: "count",
  },
  memory_object_terminate: { id: "positive" },
  memory_object_set_size: { id: "positive", size: "count" },
  received: { id: "positive", mid: "count" },
};

/**
 * The most atomic groups one kernel may have open, and so the longest `open_groups` (docs/protocol.md §12;
 * MAX_OPEN_GROUPS of the manager's constants, written out again here).
 */
export const MAX_OPEN_GROUPS = 64;

/** A rule only an optional field keeps: a list of at most MAX_OPEN_GROUPS group numbers. */
type OptionalFieldRule = FieldRule | "groups";

/**
 * Fields a message may leave out, and the rule each keeps when given: `batch` (docs/protocol.md §11),
 * `open_groups` and `group` (docs/protocol.md §12). Checked in this order, after the fields of FIELDS.
 */
const OPTIONAL_FIELDS: Partial<Record<KernelMessage["type"], Record<string, OptionalFieldRule>>> = {
  memory_object_init: { batch: "boolean", open_groups: "groups", coherent: "boolean" },
  memory_object_data_return: { group: "positive" },
  memory_object_synchronize: { group: "positive" },
  memory_object_set_size: { group: "positive" },
};

/** Whether the header's optional fields, those it gives, keep their rules. */
export function optionalFieldsKeepRules(
  type: KernelMessage["type"],
  header: object,
): string | null {
  const given = header as Record<string, unknown>;
  for (const [name, rule] of Object.entries(OPTIONAL_FIELDS[type] ?? {})) {
    if (given[name] !== undefined && !keepsOptionalRule(rule, given[name])) return name;
  }
  return null;
}

function keepsOptionalRule(rule: OptionalFieldRule, value: unknown): boolean {
  if (rule !== "groups") return keepsRule(rule, value);
  return (
    Array.isArray(value) &&
    value.length <= MAX_OPEN_GROUPS &&
    value.every((group) => keepsRule("positive", group))
  );
}

export const MESSAGE_TYPES = Object.keys(FIELDS) as KernelMessage["type"][];
export const FIELD_NAMES = [...new Set(MESSAGE_TYPES.flatMap((t) => Object.keys(FIELDS[t])))];

/** The messages that are applied once per id and acked (docs/protocol.md §3). */
export const STATE_CHANGING: ReadonlySet<string> = new Set([
  "memory_object_data_return",
  "memory_object_synchronize",
  "memory_object_lock_completed",
  "memory_object_terminate",
  "memory_object_set_size",
]);

/** Whether `value` keeps `rule`. */
export function keepsRule(rule: FieldRule, value: unknown): boolean {
  if (rule === "boolean") return typeof value === "boolean";
  if (typeof value !== "number" || !Number.isSafeInteger(value)) return false;
  switch (rule) {
    case "positive":
      return value >= 1;
    case "count":
      return value >= 0;
    case "page_size":
      return [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536].includes(value);
    case "protection":
      return value >= 0 && value <= 7;
    case "sync_flags":
      // Only the seven known bits, never SYNCHRONOUS (0x2) with ASYNCHRONOUS (0x1).
      return value >= 0 && value <= 0x7f && (value & 0x3) !== 0x3;
  }
}

/**
 * Whether a decoded frame is a well-formed kernel message by the documented rules: a known type,
 * every field keeping its rule, and for data_return a binary frame whose payload is `length`
 * bytes. (Whether the object then accepts it is a further question: ranges, order, duplicates.)
 */
export function isDocumentedMessage(frame: Frame): boolean {
  const { type } = frame.header;
  if (typeof type !== "string" || !Object.hasOwn(FIELDS, type)) return false;
  const fields = FIELDS[type as KernelMessage["type"]];
  for (const [name, rule] of Object.entries(fields)) {
    if (!keepsRule(rule, frame.header[name])) return false;
  }
  if (optionalFieldsKeepRules(type as KernelMessage["type"], frame.header) !== null) return false;
  if (type === "memory_object_data_return") {
    return frame.payload !== null && frame.payload.byteLength === frame.header.length;
  }
  return true;
}
