/**
 * Object names and kernel ids (docs/protocol.md §1): the characters that may name a Durable Object,
 * an R2 key prefix and a socket tag without escaping.
 */
import { HTTP_KERNEL, KERN_INVALID_ARGUMENT } from "./constants";
import { ProtocolError } from "./protocol-error";

const NAME_CHARS = /^[A-Za-z0-9._-]+$/;

function checkName(field: string, value: unknown, maxLength: number): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new ProtocolError(KERN_INVALID_ARGUMENT, "bad_name", `${field} is required`);
  }
  if (value.length > maxLength || !NAME_CHARS.test(value)) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "bad_name",
      `${field} must be 1-${maxLength} characters of A-Z a-z 0-9 . _ -`,
    );
  }
  return value;
}

/** @example parseObjectName("db.pages") // "db.pages" */
export function parseObjectName(value: unknown): string {
  return checkName("object name", value, 128);
}

/** Kernel ids of sockets; `http` is reserved for the HTTP operations. */
export function parseKernelId(value: unknown): string {
  const kernel = checkName("kernel", value, 64);
  if (kernel === HTTP_KERNEL) {
    throw new ProtocolError(
      KERN_INVALID_ARGUMENT,
      "bad_name",
      `kernel "${HTTP_KERNEL}" is reserved for HTTP requests`,
    );
  }
  return kernel;
}
