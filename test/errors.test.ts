// One conversion of errors (schema/protocol-error.ts): anything thrown becomes a ProtocolError,
// which has one HTTP form (its JSON body, the status of its code) and one socket form (`error`).
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  KERN_ABORTED,
  KERN_FAILURE,
  KERN_INVALID_ARGUMENT,
  KERN_MEMORY_ERROR,
  KERN_PROTECTION_FAILURE,
  KERN_RESOURCE_SHORTAGE,
  ProtocolError,
  bodyTooLarge,
  errorFrame,
  errorResponse,
  httpStatusOf,
  missingRight,
  objectDeleted,
  pageSizeMismatch,
  storageFailed,
  toProtocolError,
} from "../schema";

afterEach(() => vi.restoreAllMocks());

describe("toProtocolError", () => {
  it("keeps a ProtocolError as it is", () => {
    const error = new ProtocolError(KERN_INVALID_ARGUMENT, "bad_field", "offset is bad");
    expect(toProtocolError(error)).toBe(error);
  });

  it("turns anything else into an internal error that reveals nothing, and logs it", () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const error = toProtocolError(new TypeError("secret detail"), "while testing");
    expect(error).toMatchObject({ kernReturn: KERN_FAILURE, code: "internal" });
    expect(error.message).toBe("internal error");
    expect(log).toHaveBeenCalledWith("while testing", expect.any(TypeError));
    expect(toProtocolError("a string", "x", "internal error; not applied").message).toBe(
      "internal error; not applied",
    );
  });
});

describe("errorResponse", () => {
  it.each([
    [new ProtocolError(KERN_INVALID_ARGUMENT, "bad_field", "m"), 400],
    [new ProtocolError(KERN_RESOURCE_SHORTAGE, "too_many_syncs", "m"), 429],
    [new ProtocolError(KERN_RESOURCE_SHORTAGE, "too_many_errors", "m"), 429],
    [new ProtocolError(KERN_RESOURCE_SHORTAGE, "too_many_kernels", "m"), 503],
    [new ProtocolError(KERN_INVALID_ARGUMENT, "upgrade_required", "m"), 426],
    [new ProtocolError(KERN_PROTECTION_FAILURE, "unauthorized", "m"), 401],
    [bodyTooLarge(10), 413],
    [missingRight("this request", "write", ["read"]), 403],
  ])("answers %s with %i and the JSON body", async (error, status) => {
    const response = errorResponse(error);
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toMatch(/application\/json/);
    expect(await response.json()).toEqual(error.toJSON());
  });

  it("answers anything else with 500 internal", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const response = errorResponse(new Error("boom"));
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({
      error: { code: "internal", kern_return: KERN_FAILURE, message: "internal error" },
    });
  });
});

describe("errorFrame", () => {
  it("is the error message of docs/protocol.md §5", () => {
    const error = new ProtocolError(KERN_INVALID_ARGUMENT, "bad_field", "length is bad");
    expect(errorFrame(error, 7, 3)).toEqual({
      type: "error",
      reply_to: 3,
      seqno: 7,
      kern_return: KERN_INVALID_ARGUMENT,
      code: "bad_field",
      message: "length is bad",
    });
    expect(errorFrame(error, 8, null).reply_to).toBeNull();
  });
});

describe("factories of errors built in two places", () => {
  it("say the same words wherever they are thrown", () => {
    expect(bodyTooLarge(4096).message).toBe("body must not exceed 4096 bytes");
    expect(missingRight("memory_object_data_return", "write", ["read"]).message).toBe(
      "memory_object_data_return needs the write right; the token grants read",
    );
    expect(missingRight("this request", "admin", []).message).toMatch(/grants none$/);
    expect(pageSizeMismatch(8192, 4096)).toMatchObject({
      kernReturn: KERN_INVALID_ARGUMENT,
      code: "page_size_mismatch",
      message: "page_size (8192) differs from the object's page size (4096)",
    });
    expect(storageFailed("R2 is down")).toMatchObject({
      kernReturn: KERN_MEMORY_ERROR,
      code: "storage_failed",
      message: "R2 is down",
    });
    expect(objectDeleted("meanwhile")).toMatchObject({
      kernReturn: KERN_ABORTED,
      code: "object_deleted",
      message: "the object was deleted meanwhile",
    });
  });

  it("answer with the status of their code", () => {
    expect(httpStatusOf(pageSizeMismatch(8192, 4096))).toBe(409);
    expect(httpStatusOf(storageFailed("R2 is down"))).toBe(500);
    expect(httpStatusOf(objectDeleted("meanwhile"))).toBe(409);
  });

  it("cross from the object to the Worker by their body", () => {
    const error = bodyTooLarge(1);
    expect(ProtocolError.fromJSON(error.toJSON().error)).toEqual(error);
  });
});
