/**
 * Unit tests of schema/: the frame codec, message validation, range rules and names, plus the
 * public surface of schema/index.ts pinned name by name (a removed or renamed export fails here).
 */
import { describe, expect, it } from "vitest";
import {
  KERN_INVALID_ADDRESS,
  KERN_INVALID_ARGUMENT,
  ProtocolError,
  checkPageRange,
  checkWithinObject,
  MAX_BATCH_MESSAGES,
  decodeFrame,
  decodeFrameOrBatch,
  encodeBatch,
  encodeFrame,
  isBatch,
  pageSpanOf,
  parseKernelId,
  parseKernelMessage,
  parseObjectName,
  peekId,
  readSyncFlags,
  spansOverlap,
  type Batch,
  type Frame,
} from "../schema";

/** Runs `f` and returns the ProtocolError it throws (fails if it throws nothing or another error). */
function rejection(f: () => unknown): ProtocolError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  throw new Error("expected a ProtocolError, nothing was thrown");
}

function text(header: Record<string, unknown>): Frame {
  return { header, payload: null };
}

describe("encodeFrame / decodeFrame", () => {
  it("round-trips a header and payload", () => {
    const header = { type: "memory_object_data_return", id: 7, note: "é ✓" };
    const payload = new Uint8Array(1000).map((_, i) => i % 256);
    const frame = encodeFrame(header, payload);
    const json = new TextEncoder().encode(JSON.stringify(header));
    expect(new DataView(frame.buffer).getUint32(0)).toBe(json.byteLength);
    expect(frame.byteLength).toBe(4 + json.byteLength + payload.byteLength);
    const decoded = decodeFrame(frame);
    expect(decoded.header).toEqual(header);
    expect([...decoded.payload!]).toEqual([...payload]);
    // An ArrayBuffer (what a socket delivers) decodes the same way.
    expect(decodeFrame(frame.slice().buffer).header).toEqual(header);
  });

  it("round-trips an empty payload", () => {
    const decoded = decodeFrame(encodeFrame({ type: "x" }, new Uint8Array(0)));
    expect(decoded.header).toEqual({ type: "x" });
    expect(decoded.payload!.byteLength).toBe(0);
  });

  it("decodes a subarray view at a non-zero byte offset", () => {
    const frame = encodeFrame({ type: "y", id: 1 }, new Uint8Array([1, 2, 3]));
    const padded = new Uint8Array(frame.byteLength + 5);
    padded.set(frame, 5);
    const decoded = decodeFrame(padded.subarray(5));
    expect(decoded.header).toEqual({ type: "y", id: 1 });
    expect([...decoded.payload!]).toEqual([1, 2, 3]);
  });

  it("decodes a text frame as JSON without payload", () => {
    expect(decodeFrame('{"type":"received","id":3,"mid":1}')).toEqual({
      header: { type: "received", id: 3, mid: 1 },
      payload: null,
    });
  });

  it.each([
    ["not JSON", "{nope", "bad_json", /not valid JSON/],
    ["a JSON array", "[1,2]", "bad_json", /JSON object/],
    ["JSON null", "null", "bad_json", /JSON object/],
    ["a JSON number", "42", "bad_json", /JSON object/],
  ])("rejects a text frame that is %s", (_, data, code, message) => {
    const error = rejection(() => decodeFrame(data));
    expect(error.kernReturn).toBe(KERN_INVALID_ARGUMENT);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });

  it("rejects a binary frame shorter than 4 bytes", () => {
    for (const bytes of [new Uint8Array(0), new Uint8Array([0, 0, 0])]) {
      const error = rejection(() => decodeFrame(bytes));
      expect(error.code).toBe("bad_frame");
      expect(error.message).toMatch(/4-byte header length/);
    }
  });

  it("rejects a header length larger than the frame", () => {
    const bytes = new Uint8Array([0, 0, 0, 10, 0x7b, 0x7d]);
    const error = rejection(() => decodeFrame(bytes));
    expect(error.code).toBe("bad_frame");
    expect(error.message).toMatch(/header length 10 exceeds the 2 bytes/);
  });

  it("rejects a header that is not UTF-8 or not a JSON object", () => {
    const badUtf8 = new Uint8Array([0, 0, 0, 2, 0xff, 0xfe]);
    expect(rejection(() => decodeFrame(badUtf8)).message).toMatch(/UTF-8/);
    const array = encodeFrame([1, 2], new Uint8Array(4));
    expect(rejection(() => decodeFrame(array)).code).toBe("bad_json");
  });
});

describe("encodeBatch / decodeFrameOrBatch (docs/protocol.md §11)", () => {
  const sync = (id: number) => ({ type: "memory_object_synchronize", id, offset: 0, length: 0 });
  const ret = (id: number, length: number) => ({ type: "memory_object_data_return", id, length });

  function batchOf(data: string | Uint8Array): Batch {
    const decoded = decodeFrameOrBatch(data);
    if (!isBatch(decoded)) throw new Error("expected a batch");
    return decoded;
  }

  it("reads a message that is not an array as decodeFrame does", () => {
    const frame = encodeFrame({ type: "x", id: 1 }, new Uint8Array([9]));
    expect(decodeFrameOrBatch(frame)).toEqual(decodeFrame(frame));
    const text = decodeFrameOrBatch('{"type":"received","id":3,"mid":1}');
    expect(isBatch(text)).toBe(false);
    expect(text).toEqual({ header: { type: "received", id: 3, mid: 1 }, payload: null });
  });

  it("encodes messages without pages as a JSON array text frame, and reads it back", () => {
    const encoded = encodeBatch([{ message: sync(1) }, { message: sync(2) }]);
    expect(encoded).toBe(JSON.stringify([sync(1), sync(2)]));
    const batch = batchOf(encoded as string);
    expect(batch.payloadBytes).toBe(0);
    expect(batch.messages).toEqual([
      { header: sync(1), payload: null },
      { header: sync(2), payload: null },
    ]);
  });

  it("encodes messages with pages as one binary frame, payloads back to back in array order", () => {
    const a = new Uint8Array(3).fill(1);
    const b = new Uint8Array(5).fill(2);
    const encoded = encodeBatch([
      { message: ret(1, 3), payload: a },
      { message: sync(2) },
      { message: ret(3, 5), payload: b },
    ]) as Uint8Array;
    expect(encoded).toBeInstanceOf(Uint8Array);
    const header = new TextEncoder().encode(JSON.stringify([ret(1, 3), sync(2), ret(3, 5)]));
    expect(new DataView(encoded.buffer).getUint32(0)).toBe(header.byteLength);
    expect(encoded.byteLength).toBe(4 + header.byteLength + 8);
    const batch = batchOf(encoded);
    expect(batch.payloadBytes).toBe(8);
    const [first, second, third] = batch.messages as Frame[];
    expect(first!.header).toEqual(ret(1, 3));
    expect([...first!.payload!]).toEqual([...a]);
    expect(second).toEqual({ header: sync(2), payload: null });
    expect([...third!.payload!]).toEqual([...b]);
    // An ArrayBuffer (what a socket delivers) decodes the same way.
    expect(batchOf(encoded.slice().buffer as unknown as Uint8Array).payloadBytes).toBe(8);
  });

  it("splits data_supply payloads too (the manager's replies)", () => {
    const supply = { type: "memory_object_data_supply", reply_to: 1, seqno: 4, length: 2 };
    const batch = batchOf(
      encodeBatch([
        { message: { type: "ack", id: 1, seqno: 3 } },
        { message: supply, payload: new Uint8Array([7, 8]) },
      ]) as Uint8Array,
    );
    expect([...(batch.messages[1] as Frame).payload!]).toEqual([7, 8]);
  });

  it("leaves an entry that is not an object to be that message's own error", () => {
    const batch = batchOf(JSON.stringify([sync(1), 42, [1], null, sync(2)]));
    expect(batch.messages).toHaveLength(5);
    for (const bad of batch.messages.slice(1, 4)) {
      expect(bad).toBeInstanceOf(ProtocolError);
      expect(bad).toMatchObject({ code: "bad_json", kernReturn: KERN_INVALID_ARGUMENT });
    }
    expect(batch.messages[4]).toEqual({ header: sync(2), payload: null });
  });

  it("gives a data_return of a text batch no payload (refused by parseKernelMessage, as alone)", () => {
    const whole = { ...ret(1, 4096), offset: 0, dirty: true, kernel_copy: false };
    const [only] = batchOf(JSON.stringify([whole])).messages as Frame[];
    expect(only!.payload).toBeNull();
    expect(rejection(() => parseKernelMessage(only!)).message).toMatch(/binary frame/);
  });

  it("holds MAX_BATCH_MESSAGES messages, and no more", () => {
    const most = Array.from({ length: MAX_BATCH_MESSAGES }, (_, i) => sync(i + 1));
    expect(batchOf(JSON.stringify(most)).messages).toHaveLength(MAX_BATCH_MESSAGES);
    const error = rejection(() => decodeFrameOrBatch(JSON.stringify([...most, sync(999)])));
    expect(error).toMatchObject({ code: "bad_frame", kernReturn: KERN_INVALID_ARGUMENT });
    expect(error.message).toMatch(/MAX_BATCH_MESSAGES/);
  });

  it.each([
    ["an empty text batch", () => "[]", /at least one message/],
    ["an empty binary batch", () => encodeFrame([], new Uint8Array(0)), /at least one message/],
    [
      "payload bytes short of the lengths",
      () => encodeFrame([ret(1, 4), ret(2, 4)], new Uint8Array(6)),
      /fewer than the lengths/,
    ],
    [
      "payload bytes beyond the lengths",
      () => encodeFrame([ret(1, 4), sync(2)], new Uint8Array(5)),
      /but the messages that carry pages have 4/,
    ],
    [
      "payload bytes with no message to carry them",
      () => encodeFrame([sync(1)], new Uint8Array(1)),
      /have 0/,
    ],
    [
      "a data_return without a valid length",
      () =>
        encodeFrame([{ type: "memory_object_data_return", id: 1, length: "4" }], new Uint8Array(4)),
      /no valid length/,
    ],
  ])("refuses %s as a frame that cannot be parsed", (_name, make, message) => {
    const error = rejection(() => decodeFrameOrBatch(make()));
    expect(error).toMatchObject({ code: "bad_frame", kernReturn: KERN_INVALID_ARGUMENT });
    expect(error.message).toMatch(message);
  });

  it("refuses what decodeFrame refuses, before looking for an array", () => {
    expect(rejection(() => decodeFrameOrBatch("[nope")).code).toBe("bad_json");
    expect(rejection(() => decodeFrameOrBatch(new Uint8Array([0, 0]))).code).toBe("bad_frame");
  });

  it("decodeFrame still refuses an array, batch or not", () => {
    expect(rejection(() => decodeFrame(JSON.stringify([sync(1)]))).message).toMatch(/JSON object/);
  });
});

describe("parseKernelMessage", () => {
  const valid: Record<string, Record<string, unknown>> = {
    memory_object_init: { id: 1, page_size: 4096, received_mid: 0 },
    memory_object_data_request: { id: 2, offset: 0, length: 4096, desired_access: 1 },
    memory_object_data_unlock: { id: 3, offset: 4096, length: 4096, desired_access: 3 },
    memory_object_synchronize: { id: 5, offset: 0, length: 100, sync_flags: 2 },
    memory_object_lock_completed: { id: 6, lock_id: 1, offset: 0, length: 4096 },
    memory_object_terminate: { id: 7 },
    received: { id: 8, mid: 3 },
  };

  it.each(Object.entries(valid))("parses a valid %s", (type, fields) => {
    const message = parseKernelMessage(text({ type, ...fields, unknown_field: "ignored" }));
    expect(message).toEqual({ type, ...fields });
  });

  it("reads init's optional batch only when it is given (docs/protocol.md §11)", () => {
    const init = { type: "memory_object_init", ...valid.memory_object_init };
    expect(parseKernelMessage(text({ ...init, batch: true }))).toEqual({ ...init, batch: true });
    expect(parseKernelMessage(text({ ...init, batch: false }))).toEqual({ ...init, batch: false });
    expect(parseKernelMessage(text(init))).not.toHaveProperty("batch");
  });

  it("parses a valid binary data_return with its payload", () => {
    const payload = new Uint8Array(8192).fill(1);
    const message = parseKernelMessage({
      header: {
        type: "memory_object_data_return",
        id: 4,
        offset: 4096,
        length: 8192,
        dirty: true,
        kernel_copy: false,
      },
      payload,
    });
    expect(message).toMatchObject({
      type: "memory_object_data_return",
      id: 4,
      offset: 4096,
      length: 8192,
      dirty: true,
      kernel_copy: false,
    });
    expect(message.type === "memory_object_data_return" && message.data).toBe(payload);
  });

  it.each([
    ["missing type", { id: 1 }, "bad_field", /^type must be a string/],
    ["a numeric type", { type: 3, id: 1 }, "bad_field", /^type must be a string/],
    ["an unknown type", { type: "memory_object_bogus", id: 1 }, "unknown_type", /bogus/],
    ["a prototype key as type", { type: "toString", id: 1 }, "unknown_type", /toString/],
  ])("rejects %s", (_, header, code, message) => {
    const error = rejection(() => parseKernelMessage(text(header)));
    expect(error.kernReturn).toBe(KERN_INVALID_ARGUMENT);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ["init id 0", { ...valid.memory_object_init, id: 0 }, "id"],
    ["init id 'x'", { ...valid.memory_object_init, id: "x" }, "id"],
    ["init without page_size", { id: 1, received_mid: 0 }, "page_size"],
    ["init page_size 1000", { ...valid.memory_object_init, page_size: 1000 }, "page_size"],
    ["init page_size 256", { ...valid.memory_object_init, page_size: 256 }, "page_size"],
    ["init page_size 131072", { ...valid.memory_object_init, page_size: 131072 }, "page_size"],
    ["init received_mid -1", { ...valid.memory_object_init, received_mid: -1 }, "received_mid"],
    ["init batch 1", { ...valid.memory_object_init, batch: 1 }, "batch"],
    ["init batch 'true'", { ...valid.memory_object_init, batch: "true" }, "batch"],
    ["init batch null", { ...valid.memory_object_init, batch: null }, "batch"],
    ["data_request offset -1", { ...valid.memory_object_data_request, offset: -1 }, "offset"],
    ["data_request offset 1.5", { ...valid.memory_object_data_request, offset: 1.5 }, "offset"],
    [
      "data_request length '4096'",
      { ...valid.memory_object_data_request, length: "4096" },
      "length",
    ],
    [
      "data_request offset 2^53",
      { ...valid.memory_object_data_request, offset: 2 ** 53 },
      "offset",
    ],
    [
      "data_request desired_access 8",
      { ...valid.memory_object_data_request, desired_access: 8 },
      "desired_access",
    ],
    ["data_unlock without desired_access", { id: 3, offset: 0, length: 4096 }, "desired_access"],
    [
      "synchronize sync_flags 3",
      { ...valid.memory_object_synchronize, sync_flags: 3 },
      "sync_flags",
    ],
    ["synchronize without length", { id: 5, offset: 0, sync_flags: 2 }, "length"],
    ["lock_completed lock_id 0", { ...valid.memory_object_lock_completed, lock_id: 0 }, "lock_id"],
    ["terminate id -2", { id: -2 }, "id"],
    ["received mid 'a'", { id: 8, mid: "a" }, "mid"],
  ];

  it.each(invalid)("rejects %s, naming the field", (label, fields, field) => {
    const type = Object.keys(valid).find((t) => label.startsWith(t.replace("memory_object_", "")))!;
    const error = rejection(() => parseKernelMessage(text({ type, ...fields })));
    expect(error.kernReturn).toBe(KERN_INVALID_ARGUMENT);
    expect(error.code).toBe("bad_field");
    expect(error.message.startsWith(`${field} `)).toBe(true);
  });

  const dataReturn = {
    type: "memory_object_data_return",
    id: 4,
    offset: 0,
    length: 4096,
    dirty: true,
    kernel_copy: false,
  };

  it("rejects a data_return sent as text (no payload)", () => {
    const error = rejection(() => parseKernelMessage(text(dataReturn)));
    expect(error.code).toBe("bad_field");
    expect(error.message).toMatch(/binary frame/);
  });

  it("rejects a data_return whose length differs from the payload size", () => {
    const error = rejection(() =>
      parseKernelMessage({ header: dataReturn, payload: new Uint8Array(8192) }),
    );
    expect(error.message).toMatch(/^length \(4096\) must equal the payload size \(8192\)/);
  });

  it("rejects a data_return with a non-boolean dirty or kernel_copy", () => {
    const payload = new Uint8Array(4096);
    expect(
      rejection(() => parseKernelMessage({ header: { ...dataReturn, dirty: 1 }, payload })).message,
    ).toMatch(/^dirty /);
    expect(
      rejection(() => parseKernelMessage({ header: { ...dataReturn, kernel_copy: "no" }, payload }))
        .message,
    ).toMatch(/^kernel_copy /);
  });
});

describe("peekId", () => {
  it("returns a valid id, else null", () => {
    expect(peekId({ id: 9 })).toBe(9);
    expect(peekId({ id: 0 })).toBeNull();
    expect(peekId({ id: "9" })).toBeNull();
    expect(peekId({ id: 1.5 })).toBeNull();
    expect(peekId({})).toBeNull();
    expect(peekId(undefined)).toBeNull();
  });
});

describe("readSyncFlags", () => {
  it.each([0, 1, 2, 4, 5, 6, 0x08, 0x10, 0x20, 0x40, 0x7e, 0x7d])("accepts 0x%s", (flags) => {
    expect(readSyncFlags({ sync_flags: flags })).toBe(flags);
  });

  it.each([
    [3, /both VM_SYNC_SYNCHRONOUS and VM_SYNC_ASYNCHRONOUS/],
    [0x7f, /both/],
    [0x80, /undefined bits 0x80/],
    [0x102, /undefined bits 0x100/],
    [-1, /non-negative integer/],
    [1.5, /non-negative integer/],
    ["2", /non-negative integer/],
    [undefined, /non-negative integer/],
  ])("rejects %s", (flags, message) => {
    const error = rejection(() => readSyncFlags({ sync_flags: flags }));
    expect(error.kernReturn).toBe(KERN_INVALID_ARGUMENT);
    expect(error.message).toMatch(/^sync_flags /);
    expect(error.message).toMatch(message);
  });
});

describe("ranges", () => {
  const geometry = { pageSize: 4096, maxTransfer: 1 << 20, maxSize: 2 ** 40 };

  it("pageSpanOf rounds outward, and a zero length is an empty span", () => {
    expect(pageSpanOf(0, 4096, 4096)).toEqual({ first: 0, end: 1 });
    expect(pageSpanOf(4095, 2, 4096)).toEqual({ first: 0, end: 2 });
    expect(pageSpanOf(4096, 1, 4096)).toEqual({ first: 1, end: 2 });
    expect(pageSpanOf(100, 8192, 4096)).toEqual({ first: 0, end: 3 });
    expect(pageSpanOf(5000, 0, 4096)).toEqual({ first: 1, end: 1 });
    expect(pageSpanOf(2 ** 40 - 512, 512, 512)).toEqual({ first: 2 ** 31 - 1, end: 2 ** 31 });
  });

  it("spansOverlap treats spans as half-open", () => {
    expect(spansOverlap({ first: 0, end: 2 }, { first: 1, end: 3 })).toBe(true);
    expect(spansOverlap({ first: 0, end: 2 }, { first: 2, end: 3 })).toBe(false);
    expect(spansOverlap({ first: 1, end: 1 }, { first: 0, end: 3 })).toBe(true);
  });

  it("checkPageRange accepts aligned page multiples up to max_transfer within max_size", () => {
    expect(checkPageRange(0, 4096, geometry)).toEqual({ first: 0, end: 1 });
    expect(checkPageRange(8192, 1 << 20, geometry)).toEqual({ first: 2, end: 258 });
    expect(checkPageRange(2 ** 40 - 4096, 4096, geometry)).toEqual({
      first: 2 ** 28 - 1,
      end: 2 ** 28,
    });
  });

  it.each([
    [
      "an unaligned offset",
      100,
      4096,
      KERN_INVALID_ARGUMENT,
      /^offset must be a multiple of page_size \(4096\)/,
    ],
    ["a zero length", 0, 0, KERN_INVALID_ARGUMENT, /^length must be a positive multiple/],
    ["a partial page", 0, 5000, KERN_INVALID_ARGUMENT, /^length must be a positive multiple/],
    [
      "a length over max_transfer",
      0,
      (1 << 20) + 4096,
      KERN_INVALID_ARGUMENT,
      /^length must not exceed max_transfer/,
    ],
    ["a range beyond max_size", 2 ** 40, 4096, KERN_INVALID_ADDRESS, /exceeds max_size/],
    [
      "a range ending past max_size",
      2 ** 40 - 4096,
      8192,
      KERN_INVALID_ADDRESS,
      /exceeds max_size/,
    ],
  ])("checkPageRange rejects %s", (_, offset, length, kernReturn, message) => {
    const error = rejection(() => checkPageRange(offset, length, geometry));
    expect(error.kernReturn).toBe(kernReturn);
    expect(error.message).toMatch(message);
    if (kernReturn === KERN_INVALID_ADDRESS) expect(error.code).toBe("out_of_range");
  });

  it("checkWithinObject allows exactly max_size and rejects one byte more", () => {
    expect(() => checkWithinObject(0, 2 ** 40, 2 ** 40)).not.toThrow();
    expect(rejection(() => checkWithinObject(1, 2 ** 40, 2 ** 40)).kernReturn).toBe(
      KERN_INVALID_ADDRESS,
    );
  });
});

describe("names", () => {
  it.each(["a", "db.pages", "A-Z_0.9", "x".repeat(128)])("accepts object name %s", (name) => {
    expect(parseObjectName(name)).toBe(name);
  });

  it.each([
    ["empty", "", /required/],
    ["missing", null, /required/],
    ["129 characters", "x".repeat(129), /1-128 characters/],
    ["with '!'", "bad!name", /1-128 characters of A-Z a-z 0-9 \. _ -/],
    ["with '/'", "a/b", /1-128 characters/],
    ["with a space", "a b", /1-128 characters/],
    ["non-ASCII", "café", /1-128 characters/],
  ])("rejects an object name %s", (_, name, message) => {
    const error = rejection(() => parseObjectName(name));
    expect(error.kernReturn).toBe(KERN_INVALID_ARGUMENT);
    expect(error.code).toBe("bad_name");
    expect(error.message).toMatch(/^object name /);
    expect(error.message).toMatch(message);
  });

  it.each(["k1", "HTTP", "http2", "x".repeat(64)])("accepts kernel id %s", (kernel) => {
    expect(parseKernelId(kernel)).toBe(kernel);
  });

  it.each([
    ["empty", "", /required/],
    ["65 characters", "x".repeat(65), /1-64 characters/],
    ["with ':'", "k:1", /1-64 characters/],
    ["reserved 'http'", "http", /reserved/],
  ])("rejects a kernel id %s", (_, kernel, message) => {
    const error = rejection(() => parseKernelId(kernel));
    expect(error.code).toBe("bad_name");
    expect(error.message).toMatch(/^kernel /);
    expect(error.message).toMatch(message);
  });
});

describe("public surface", () => {
  it("schema/index.ts exports exactly these names", async () => {
    expect(Object.keys(await import("../schema")).sort()).toEqual([
      "CLOSE_LOCK_TIMEOUT",
      "CLOSE_NORMAL",
      "CLOSE_POLICY_VIOLATION",
      "CLOSE_REPLACED",
      "CLOSE_TOKEN_EXPIRED",
      "DEFAULT_PAGE_SIZE",
      "DIRECTORY_PATH",
      "DIRECTORY_PREFIX",
      "GRANT_HEADER",
      "HTTP_KERNEL",
      "HTTP_PATHS",
      "KERN_ABORTED",
      "KERN_FAILURE",
      "KERN_INVALID_ADDRESS",
      "KERN_INVALID_ARGUMENT",
      "KERN_MEMORY_ERROR",
      "KERN_MEMORY_PRESENT",
      "KERN_NO_ACCESS",
      "KERN_NO_SPACE",
      "KERN_PROTECTION_FAILURE",
      "KERN_RESOURCE_SHORTAGE",
      "KERN_SUCCESS",
      "MAX_BATCH_MESSAGES",
      "MAX_OPEN_GROUPS",
      "MAX_PAGE_SIZE",
      "MEMORY_OBJECT_COPY_CALL",
      "MEMORY_OBJECT_COPY_DELAY",
      "MEMORY_OBJECT_COPY_NONE",
      "MEMORY_OBJECT_COPY_SYMMETRIC",
      "MEMORY_OBJECT_COPY_TEMPORARY",
      "MEMORY_OBJECT_RETURN_ALL",
      "MEMORY_OBJECT_RETURN_ANYTHING",
      "MEMORY_OBJECT_RETURN_DIRTY",
      "MEMORY_OBJECT_RETURN_NONE",
      "MIN_PAGE_SIZE",
      "OBJECT_NAME_HEADER",
      "OPERATION_HEADER",
      "ProtocolError",
      "RIGHTS",
      "STATE_CHANGING_TYPES",
      "TokenError",
      "VM_PROT_ALL",
      "VM_PROT_EXECUTE",
      "VM_PROT_NONE",
      "VM_PROT_NO_CHANGE",
      "VM_PROT_READ",
      "VM_PROT_WRITE",
      "VM_SYNC_ASYNCHRONOUS",
      "VM_SYNC_CONTIGUOUS",
      "VM_SYNC_DEACTIVATE",
      "VM_SYNC_INVALIDATE",
      "VM_SYNC_KILLPAGES",
      "VM_SYNC_KNOWN_BITS",
      "VM_SYNC_REUSABLEPAGES",
      "VM_SYNC_SYNCHRONOUS",
      "bodyTooLarge",
      "checkPageRange",
      "checkSize",
      "checkWithinObject",
      "decodeFrame",
      "decodeFrameOrBatch",
      "encodeBatch",
      "encodeFrame",
      "entryOf",
      "errorFrame",
      "errorResponse",
      "grantCovers",
      "httpStatusOf",
      "internalError",
      "invalidField",
      "isBatch",
      "isPageSize",
      "isPathOf",
      "manifestKey",
      "manifestMetadata",
      "missingRight",
      "modeMismatch",
      "objectDeleted",
      "objectPath",
      "pageSizeMismatch",
      "pageSpanOf",
      "parseKernelId",
      "parseKernelMessage",
      "parseObjectName",
      "parseRights",
      "peekId",
      "readCount",
      "readSyncFlags",
      "signToken",
      "spansOverlap",
      "storageFailed",
      "toProtocolError",
      "verifyToken",
    ]);
  });
});
