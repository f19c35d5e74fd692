// The client's batch frames (docs/protocol.md §11) without a server: packing single frames into
// bounded batches that the shared decoder (schema/batch.ts) reads back message for message, and
// the batcher's one-turn coalescing. The same against the real Worker is
// test/node/client-batches.test.ts.
import { describe, expect, it } from "vitest";
import { Batcher, MAX_BATCH_HEADER_BYTES, packBatches } from "../../client/batcher";
import {
  MAX_BATCH_MESSAGES,
  decodeFrame,
  decodeFrameOrBatch,
  encodeBatch,
  encodeFrame,
  isBatch,
  type Frame,
} from "../../schema";

const PAGE = 4096;
const LIMITS = {
  messages: MAX_BATCH_MESSAGES,
  payloadBytes: 256 * 1024,
  headerBytes: MAX_BATCH_HEADER_BYTES,
};

function dataReturn(id: number, pages: number): Uint8Array {
  const header = {
    type: "memory_object_data_return",
    offset: id * PAGE,
    length: pages * PAGE,
    dirty: true,
    kernel_copy: false,
    id,
  };
  return encodeFrame(header, new Uint8Array(pages * PAGE).fill(id & 0xff));
}

function synchronize(id: number): string {
  return JSON.stringify({
    type: "memory_object_synchronize",
    offset: 0,
    length: PAGE,
    sync_flags: 2,
    id,
  });
}

/** The messages that went in, as a plain decode of each single frame sees them. */
function decodedEach(frames: (string | Uint8Array)[]): Frame[] {
  return frames.map((frame) => {
    const { header, payload } = decodeFrame(frame);
    return { header, payload: typeof frame === "string" ? null : payload };
  });
}

/** The messages of a frame, as the manager's decoder reads them. */
function unpackFrame(frame: string | Uint8Array): Frame[] {
  const decoded = decodeFrameOrBatch(frame);
  if (!isBatch(decoded)) return [decoded];
  return decoded.messages.map((message) => {
    if (message instanceof Error) throw message;
    return message;
  });
}

function unpackedAll(frames: (string | Uint8Array)[]): Frame[] {
  return frames.flatMap((frame) => unpackFrame(frame));
}

describe("packBatches", () => {
  it("packs messages without pages into one text frame holding a JSON array", () => {
    const frames = [synchronize(1), synchronize(2), synchronize(3)];
    const packed = packBatches(frames, LIMITS);
    expect(packed).toHaveLength(1);
    expect(typeof packed[0]).toBe("string");
    expect(JSON.parse(packed[0] as string)).toEqual(frames.map((f) => JSON.parse(f)));
  });

  it("packs returns and a synchronize into one binary frame: array header, payloads in order", () => {
    const frames = [dataReturn(1, 2), synchronize(2), dataReturn(3, 1)];
    const packed = packBatches(frames, LIMITS);
    expect(packed).toHaveLength(1);
    const frame = packed[0] as Uint8Array;
    const headerLength = new DataView(frame.buffer).getUint32(0);
    const header = JSON.parse(new TextDecoder().decode(frame.subarray(4, 4 + headerLength)));
    expect(header.map((m: { type: string }) => m.type)).toEqual([
      "memory_object_data_return",
      "memory_object_synchronize",
      "memory_object_data_return",
    ]);
    expect(frame.byteLength).toBe(4 + headerLength + 3 * PAGE);
    expect(unpackedAll(packed)).toEqual(decodedEach(frames));
    // Byte for byte what the shared encoder makes of the same messages.
    const entries = decodedEach(frames).map(({ header, payload }) => ({
      message: header,
      payload: payload ?? undefined,
    }));
    expect(frame).toEqual(encodeBatch(entries));
  });

  it("leaves a message alone as the single frame it was, byte for byte", () => {
    const single = dataReturn(7, 1);
    expect(packBatches([single], LIMITS)[0]).toBe(single);
    expect(packBatches([synchronize(1)], LIMITS)).toEqual([synchronize(1)]);
  });

  it("starts a new frame at MAX_BATCH_MESSAGES messages", () => {
    const frames = Array.from({ length: MAX_BATCH_MESSAGES + 44 }, (_, i) => synchronize(i + 1));
    const packed = packBatches(frames, LIMITS);
    expect(packed.map((f) => unpackFrame(f).length)).toEqual([MAX_BATCH_MESSAGES, 44]);
    expect(unpackedAll(packed)).toEqual(decodedEach(frames));
  });

  it("starts a new frame before the payload bytes would pass max_transfer", () => {
    // 64 KiB per return under a 256 KiB max_transfer: four per frame.
    const frames = Array.from({ length: 10 }, (_, i) => dataReturn(i + 1, 16));
    const packed = packBatches(frames, LIMITS);
    expect(packed.map((f) => unpackFrame(f).length)).toEqual([4, 4, 2]);
    for (const frame of packed) {
      const bytes = unpackFrame(frame).reduce((sum, m) => sum + (m.payload?.byteLength ?? 0), 0);
      expect(bytes).toBeLessThanOrEqual(LIMITS.payloadBytes);
    }
    expect(unpackedAll(packed)).toEqual(decodedEach(frames));
  });

  it("starts a new frame before the header JSON would pass its bound", () => {
    // Messages of about 1 KB each: well under the message count, over the header bound.
    const frames = Array.from({ length: 200 }, (_, i) =>
      JSON.stringify({ type: "memory_object_synchronize", id: i + 1, pad: "x".repeat(1000) }),
    );
    const packed = packBatches(frames, LIMITS);
    expect(packed.length).toBeGreaterThan(1);
    for (const frame of packed) {
      expect(new TextEncoder().encode(frame as string).byteLength).toBeLessThanOrEqual(
        MAX_BATCH_HEADER_BYTES,
      );
    }
    expect(unpackedAll(packed)).toEqual(decodedEach(frames));
  });

  it("counts the header's bytes as UTF-8, not as string length", () => {
    const wide = JSON.stringify({ type: "x", id: 1, pad: "é".repeat(400) });
    const packed = packBatches([wide, wide, wide], { ...LIMITS, headerBytes: 1700 });
    // Each message is about 820 UTF-8 bytes (420 characters): two fit in 1,700 bytes, not three.
    expect(packed.map((f) => unpackFrame(f).length)).toEqual([2, 1]);
  });
});

describe("Batcher", () => {
  it("sends what was added in one turn as one frame, after the turn", async () => {
    const sent: (string | Uint8Array)[] = [];
    const batcher = new Batcher((frame) => sent.push(frame), LIMITS);
    for (let id = 1; id <= 64; id++) batcher.add(synchronize(id));
    expect(sent).toHaveLength(0);
    await Promise.resolve();
    expect(sent).toHaveLength(1);
    expect(unpackFrame(sent[0]!)).toHaveLength(64);
  });

  it("sends what was added after an await as a frame of its own", async () => {
    const sent: (string | Uint8Array)[] = [];
    const batcher = new Batcher((frame) => sent.push(frame), LIMITS);
    batcher.add(synchronize(1));
    batcher.add(synchronize(2));
    await new Promise((resolve) => setTimeout(resolve, 0));
    batcher.add(synchronize(3));
    batcher.flush();
    expect(sent.map((f) => unpackFrame(f).length)).toEqual([2, 1]);
  });
});
