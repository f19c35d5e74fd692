/**
 * docs/protocol.md §8 over a real socket: every bad input gets one `error` with the right kern_return,
 * a code and a message naming the field or rule, `reply_to` = its id when valid else null; it
 * consumes its seqno, changes no state, and the socket stays open for the next valid message.
 */
import { MAX_DATABASE_BYTES, maxSizeFor, type Limits } from "../durable/limits";
import { describe, expect, it } from "vitest";
import {
  CLOSE_POLICY_VIOLATION,
  KERN_INVALID_ADDRESS,
  KERN_INVALID_ARGUMENT,
  VM_SYNC_SYNCHRONOUS,
  encodeFrame,
} from "../schema";
import { wrapObjectBucket } from "./helpers/buckets";
import { binaryFrame } from "./helpers/frames";
import { stat } from "./helpers/http";
import { TestKernel, expectQuiet, pageOf, settle, type Received } from "./helpers/kernel";

// What a 4 KiB-page object announces: its page index's room within MAX_DATABASE_BYTES.
const MAX_SIZE = maxSizeFor(
  { maxSize: 2 ** 40, maxDatabaseBytes: MAX_DATABASE_BYTES } as Limits,
  4096,
);
const MAX_TRANSFER = 1 << 20;

/** What must not change: everything `GET /v1/objects/{name}` reports but the seqno. */
function stateOf(status: Record<string, any>) {
  const { seqno: _seqno, ...rest } = status;
  return rest;
}

/**
 * An object with page 0 written (all 5s) and flushed to R2, and kernel k1 initialized on it.
 * Returns the kernel and the object's status; `before.seqno` is the seqno the next message gets.
 */
async function fixture(object: string) {
  const { kernel } = await TestKernel.open(object, "k1");
  kernel.dataReturn(0, pageOf(5));
  const done = await kernel.completion(kernel.synchronize(0, 4096, VM_SYNC_SYNCHRONOUS));
  expect(done.type).toBe("memory_object_synchronize_completed");
  const before = await stat(object);
  expect(before).toMatchObject({ pages: 1, journal_pages: 0, syncs: 0 });
  return { kernel, before };
}

interface Expected {
  kern_return?: number;
  code: string;
  /** The message must name the field or rule. */
  message: RegExp;
  reply_to: number | null;
}

/**
 * Sends one bad input on an initialized kernel's socket and checks everything docs/protocol.md §8 promises: the
 * error, its seqno, that the next message gets the following seqno and still reads the old
 * bytes, that nothing else was answered, that the object's state is unchanged, and that the
 * socket is open.
 */
async function expectRejected(
  object: string,
  kernel: TestKernel,
  before: Record<string, any>,
  send: () => void,
  expected: Expected,
): Promise<Received> {
  const seen = kernel.received.length;
  send();
  const error = await kernel.next((m) => kernel.received.indexOf(m) >= seen);
  expect(error).toEqual({
    type: "error",
    reply_to: expected.reply_to,
    seqno: before.seqno,
    kern_return: expected.kern_return ?? KERN_INVALID_ARGUMENT,
    code: expected.code,
    message: expect.stringMatching(expected.message),
    payload: undefined,
  });
  const probe = kernel.dataRequest(0, 4096);
  const supply = await kernel.answer(probe);
  expect(supply).toMatchObject({
    type: "memory_object_data_supply",
    seqno: before.seqno + 1,
    offset: 0,
    length: 4096,
  });
  expect(supply.payload!.every((b: number) => b === 5)).toBe(true);
  // Exactly the error and the probe's answer: no ack, no completion for the bad message.
  expect(kernel.received.slice(seen).map((m) => m.type)).toEqual([
    "error",
    "memory_object_data_supply",
  ]);
  const after = await stat(object);
  expect(after.seqno).toBe(before.seqno + 3); // the bad message, the probe, this stat
  expect(stateOf(after)).toEqual(stateOf(before));
  expect(kernel.closed).toBeNull();
  return error;
}

/** Runs one bad-input case on its own object and closes the kernel afterwards. */
async function rejectCase(object: string, send: (k: TestKernel) => void, expected: Expected) {
  const { kernel, before } = await fixture(object);
  try {
    return await expectRejected(object, kernel, before, () => send(kernel), expected);
  } finally {
    kernel.close();
  }
}

const dataReturnHeader = (id: number, offset: number, length: number) => ({
  type: "memory_object_data_return",
  id,
  offset,
  length,
  dirty: true,
  kernel_copy: false,
});

describe("malformed frames", () => {
  it("not JSON", async () => {
    await rejectCase("bad-not-json", (k) => k.send('{"type": "memory_object_data_request",'), {
      code: "bad_json",
      message: /not valid JSON/,
      reply_to: null,
    });
  });

  it("a JSON array", async () => {
    await rejectCase("bad-array", (k) => k.send("[1, 2, 3]"), {
      code: "bad_json",
      message: /must be a JSON object/,
      reply_to: null,
    });
  });

  it("a missing type", async () => {
    await rejectCase("bad-no-type", (k) => k.send({ id: 99, offset: 0, length: 4096 }), {
      code: "bad_field",
      message: /^type must be a string/,
      reply_to: 99,
    });
  });

  it("an unknown type", async () => {
    await rejectCase(
      "bad-unknown-type",
      (k) => k.send({ type: "memory_object_data_write", id: 99 }),
      { code: "unknown_type", message: /memory_object_data_write/, reply_to: 99 },
    );
  });

  it("a binary frame shorter than 4 bytes", async () => {
    await rejectCase("bad-short-frame", (k) => k.socket.send(new Uint8Array([0, 1])), {
      code: "bad_frame",
      message: /4-byte header length/,
      reply_to: null,
    });
  });

  it("a binary frame whose header length exceeds the frame", async () => {
    const frame = binaryFrame("{}", new Uint8Array(0), 256);
    await rejectCase("bad-header-length", (k) => k.socket.send(frame), {
      code: "bad_frame",
      message: /header length 256 exceeds the 2 bytes/,
      reply_to: null,
    });
  });
});

describe("missing and mistyped fields", () => {
  it("id 0 (reply_to null)", async () => {
    await rejectCase(
      "bad-id-zero",
      (k) =>
        k.send({
          type: "memory_object_data_request",
          id: 0,
          offset: 0,
          length: 4096,
          desired_access: 1,
        }),
      { code: "bad_field", message: /^id must be a positive safe integer/, reply_to: null },
    );
  });

  it('id "x" (reply_to null)', async () => {
    await rejectCase(
      "bad-id-string",
      (k) =>
        k.send({ type: "memory_object_synchronize", id: "x", offset: 0, length: 0, sync_flags: 2 }),
      { code: "bad_field", message: /^id must be a positive safe integer/, reply_to: null },
    );
  });

  it("offset -1", async () => {
    await rejectCase(
      "bad-offset-negative",
      (k) =>
        k.send({
          type: "memory_object_data_request",
          id: 99,
          offset: -1,
          length: 4096,
          desired_access: 1,
        }),
      { code: "bad_field", message: /^offset must be a non-negative safe integer/, reply_to: 99 },
    );
  });

  it("offset 1.5", async () => {
    await rejectCase(
      "bad-offset-fraction",
      (k) =>
        k.send({
          type: "memory_object_synchronize",
          id: 99,
          offset: 1.5,
          length: 4096,
          sync_flags: 2,
        }),
      { code: "bad_field", message: /^offset must be a non-negative safe integer/, reply_to: 99 },
    );
  });

  it("a missing field", async () => {
    await rejectCase(
      "bad-missing-length",
      (k) => k.send({ type: "memory_object_data_request", id: 99, offset: 0, desired_access: 1 }),
      { code: "bad_field", message: /^length must be a non-negative safe integer/, reply_to: 99 },
    );
  });

  it("sync_flags with SYNCHRONOUS and ASYNCHRONOUS", async () => {
    await rejectCase(
      "bad-sync-flags",
      (k) =>
        k.send({
          type: "memory_object_synchronize",
          id: 99,
          offset: 0,
          length: 4096,
          sync_flags: 3,
        }),
      { code: "bad_field", message: /^sync_flags must not set both/, reply_to: 99 },
    );
  });
});

describe("bad data_return", () => {
  it("an unaligned offset", async () => {
    await rejectCase("bad-dr-unaligned", (k) => k.dataReturn(100, pageOf(9), 99), {
      code: "bad_field",
      message: /^offset must be a multiple of page_size \(4096\)/,
      reply_to: 99,
    });
  });

  it("a length that is not a page multiple", async () => {
    await rejectCase("bad-dr-partial", (k) => k.dataReturn(0, new Uint8Array(5000).fill(9), 99), {
      code: "bad_field",
      message: /^length must be a positive multiple of page_size \(4096\)/,
      reply_to: 99,
    });
  });

  it("a length that differs from the payload size", async () => {
    await rejectCase("bad-dr-size", (k) => k.sendBinary(dataReturnHeader(99, 0, 8192), pageOf(9)), {
      code: "bad_field",
      message: /^length \(8192\) must equal the payload size \(4096\)/,
      reply_to: 99,
    });
  });

  it("a payload over max_transfer", async () => {
    await rejectCase(
      "bad-dr-too-large",
      (k) => k.dataReturn(0, new Uint8Array(MAX_TRANSFER + 4096).fill(9), 99),
      {
        code: "bad_field",
        message: /^length must not exceed max_transfer \(1048576\)/,
        reply_to: 99,
      },
    );
  });

  it("sent as text, without payload", async () => {
    await rejectCase("bad-dr-text", (k) => k.send(dataReturnHeader(99, 0, 4096)), {
      code: "bad_field",
      message: /must be a binary frame/,
      reply_to: 99,
    });
  });

  it("beyond max_size", async () => {
    await rejectCase("bad-dr-beyond", (k) => k.dataReturn(MAX_SIZE, pageOf(9), 99), {
      kern_return: KERN_INVALID_ADDRESS,
      code: "out_of_range",
      message: /exceeds max_size/,
      reply_to: 99,
    });
  });
});

describe("bad ranges", () => {
  it("data_request length over max_transfer", async () => {
    await rejectCase("bad-req-too-long", (k) => k.dataRequest(0, MAX_TRANSFER + 4096, 99), {
      code: "bad_field",
      message: /^length must not exceed max_transfer \(1048576\)/,
      reply_to: 99,
    });
  });

  it("data_request beyond max_size → KERN_INVALID_ADDRESS", async () => {
    await rejectCase("bad-req-beyond", (k) => k.dataRequest(MAX_SIZE, 4096, 99), {
      kern_return: KERN_INVALID_ADDRESS,
      code: "out_of_range",
      message: new RegExp(`exceeds max_size \\(${MAX_SIZE}\\)`),
      reply_to: 99,
    });
  });

  it("synchronize beyond max_size → KERN_INVALID_ADDRESS", async () => {
    await rejectCase(
      "bad-sync-beyond",
      (k) => k.synchronize(MAX_SIZE - 4096, 8192, VM_SYNC_SYNCHRONOUS, 99),
      {
        kern_return: KERN_INVALID_ADDRESS,
        code: "out_of_range",
        message: /exceeds max_size/,
        reply_to: 99,
      },
    );
  });

  it("a rejected state-changing message does not move last_id", async () => {
    const object = "bad-last-id";
    const { kernel, before } = await fixture(object);
    const lastId = before.kernels[0].last_id;
    await expectRejected(object, kernel, before, () => kernel.dataReturn(100, pageOf(9), 50), {
      code: "bad_field",
      message: /^offset/,
      reply_to: 50,
    });
    // A valid message may reuse the rejected id: it was never applied (docs/protocol.md §3).
    kernel.dataReturn(0, pageOf(7), 50);
    expect(await kernel.ack(50)).toMatchObject({ type: "ack", id: 50 });
    expect((await stat(object)).kernels[0].last_id).toBe(50);
    expect(lastId).toBeLessThan(50);
    kernel.close();
  });
});

describe("out-of-order messages", () => {
  it("a second init on the same socket", async () => {
    const error = await rejectCase(
      "bad-second-init",
      (k) => k.send({ type: "memory_object_init", id: 99, page_size: 4096, received_mid: 0 }),
      {
        code: "already_initialized",
        message: /memory_object_init was already accepted/,
        reply_to: 99,
      },
    );
    expect(error.reply_to).toBe(99);
  });

  it("received with a mid above the last one sent", async () => {
    await rejectCase("bad-received-mid", (k) => k.send({ type: "received", id: 99, mid: 2 }), {
      code: "mid_ahead",
      message: /^mid \(2\) is above the last mid sent to this kernel \(1\)/,
      reply_to: 99,
    });
  });

  /**
   * Cases on a second, uninitialised socket (kernel k2): after the error the socket is still
   * uninitialised, and a valid init gets the next seqno.
   */
  async function rejectBeforeInit(
    object: string,
    send: (k: TestKernel) => void,
    expected: Expected,
  ) {
    const { kernel: k1, before } = await fixture(object);
    const k2 = await TestKernel.connect(object, "k2");
    send(k2);
    const error = await k2.next((m) => m.type === "error");
    expect(error).toMatchObject({
      reply_to: expected.reply_to,
      seqno: before.seqno,
      kern_return: expected.kern_return ?? KERN_INVALID_ARGUMENT,
      code: expected.code,
    });
    expect(error.message).toMatch(expected.message);
    // Still uninitialised: a data_request is refused as before init.
    const refused = k2.dataRequest(0, 4096, 500);
    expect(await k2.answer(refused)).toMatchObject({
      type: "error",
      code: "not_initialized",
      seqno: before.seqno + 1,
    });
    const ready = await k2.init({ id: 501 });
    expect(ready).toMatchObject({
      type: "memory_object_ready",
      seqno: before.seqno + 2,
      last_id: 0,
    });
    const supply = await k2.answer(k2.dataRequest(0, 4096, 502));
    expect(supply.payload!.every((b: number) => b === 5)).toBe(true);
    expect(k2.received.map((m) => m.type)).toEqual([
      "error",
      "error",
      "memory_object_ready",
      "memory_object_data_supply",
    ]);
    const after = await stat(object);
    expect(after.seqno).toBe(before.seqno + 5);
    // k2 now appears, having sent a valid init; nothing else changed.
    expect({
      ...stateOf(after),
      kernels: after.kernels.filter((k: any) => k.kernel !== "k2"),
    }).toEqual(stateOf(before));
    expect(k1.closed).toBeNull();
    expect(k2.closed).toBeNull();
    k1.close();
    k2.close();
  }

  it("a data_request before init", async () => {
    await rejectBeforeInit("bad-before-init-request", (k) => k.dataRequest(0, 4096, 99), {
      code: "not_initialized",
      message: /memory_object_data_request before memory_object_init/,
      reply_to: 99,
    });
  });

  it("a data_return before init", async () => {
    await rejectBeforeInit("bad-before-init-return", (k) => k.dataReturn(0, pageOf(9), 99), {
      code: "not_initialized",
      message: /memory_object_data_return before memory_object_init/,
      reply_to: 99,
    });
  });

  it("a synchronize before init", async () => {
    await rejectBeforeInit(
      "bad-before-init-sync",
      (k) => k.synchronize(0, 4096, VM_SYNC_SYNCHRONOUS, 99),
      {
        code: "not_initialized",
        message: /memory_object_synchronize before memory_object_init/,
        reply_to: 99,
      },
    );
  });

  it("received before init", async () => {
    await rejectBeforeInit(
      "bad-before-init-received",
      (k) => k.send({ type: "received", id: 99, mid: 0 }),
      {
        code: "not_initialized",
        message: /received before memory_object_init/,
        reply_to: 99,
      },
    );
  });

  it("init with a page_size differing from the object's", async () => {
    await rejectBeforeInit(
      "bad-init-page-size",
      (k) => k.send({ type: "memory_object_init", id: 99, page_size: 8192, received_mid: 0 }),
      {
        code: "page_size_mismatch",
        message: /page_size \(8192\) differs from the object's page size \(4096\)/,
        reply_to: 99,
      },
    );
  });

  it("init with page_size 1000 (not a power of two)", async () => {
    await rejectBeforeInit(
      "bad-init-1000",
      (k) => k.send({ type: "memory_object_init", id: 99, page_size: 1000, received_mid: 0 }),
      {
        code: "bad_field",
        message: /^page_size must be a power of two from 512 to 65536/,
        reply_to: 99,
      },
    );
  });

  it("init with received_mid above the last mid sent", async () => {
    await rejectBeforeInit(
      "bad-init-received-mid",
      (k) => k.send({ type: "memory_object_init", id: 99, page_size: 4096, received_mid: 3 }),
      {
        code: "mid_ahead",
        message: /^received_mid \(3\) is above the last mid sent to this kernel \(0\)/,
        reply_to: 99,
      },
    );
  });

  it("not JSON before init", async () => {
    await rejectBeforeInit("bad-before-init-garbage", (k) => k.send("garbage"), {
      code: "bad_json",
      message: /not valid JSON/,
      reply_to: null,
    });
  });

  it("a rejected first init does not fix the page size of a fresh object", async () => {
    const object = "bad-fresh-init";
    const k = await TestKernel.connect(object, "k1");
    k.send({ type: "memory_object_init", id: 1, page_size: 1000, received_mid: 0 });
    expect(await k.answer(1)).toMatchObject({ type: "error", seqno: 0, code: "bad_field" });
    expect(await k.init({ id: 2, pageSize: 8192 })).toMatchObject({
      type: "memory_object_ready",
      page_size: 8192,
      seqno: 1,
    });
    k.close();
  });
});

describe("a socket that keeps sending garbage", () => {
  it("is closed with 1008 after more than 100 errors in a minute", async () => {
    const { kernel } = await TestKernel.open("bad-garbage", "k1");
    for (let i = 0; i < 100; i++) kernel.send("garbage");
    await kernel.next(() => kernel.all("error").length === 100);
    await expectQuiet(kernel);
    expect(kernel.closed).toBeNull();
    // One valid message is still answered.
    expect((await kernel.answer(kernel.dataRequest(0, 4096))).type).toBe(
      "memory_object_data_unavailable",
    );
    kernel.send("garbage");
    for (let i = 0; i < 100 && kernel.closed === null; i++) await settle(20);
    expect(kernel.closed?.code).toBe(CLOSE_POLICY_VIOLATION);
    expect(kernel.all("error")).toHaveLength(101);
  });

  it("gets every answer before the error that closes it, a data_supply being read included", async () => {
    // Found by `npm run fuzz`: the socket closed at the 101st error while a supply for an
    // earlier data_request was still being read, and the supply and the error (behind it) were
    // never sent.
    const name = "bad-garbage-after-read";
    const { kernel } = await TestKernel.open(name, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(7)));
    await kernel.completion(kernel.synchronize(0, 4096, 0x2));
    for (let i = 0; i < 100; i++) kernel.send("garbage");
    await kernel.next(() => kernel.all("error").length === 100);
    await wrapObjectBucket(name, { readDelayMs: 200 });
    const request = kernel.dataRequest(0, 4096);
    kernel.send("garbage");
    for (let i = 0; i < 100 && kernel.closed === null; i++) await settle(20);
    expect(kernel.closed?.code).toBe(CLOSE_POLICY_VIOLATION);
    const supply = kernel.all("memory_object_data_supply")[0];
    expect(supply?.reply_to).toBe(request);
    expect(supply?.payload).toEqual(pageOf(7));
    expect(kernel.all("error")).toHaveLength(101);
    expect(kernel.received.at(-1)?.type).toBe("error");
  });

  it("a binary garbage frame counts too", async () => {
    const { kernel } = await TestKernel.open("bad-garbage-binary", "k1");
    for (let i = 0; i < 101; i++)
      kernel.socket.send(encodeFrame({ type: "nope", id: i + 2 }, new Uint8Array(1)));
    for (let i = 0; i < 100 && kernel.closed === null; i++) await settle(20);
    expect(kernel.closed?.code).toBe(CLOSE_POLICY_VIOLATION);
  });
});
