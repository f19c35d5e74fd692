/**
 * Property-based tests of schema/ (fast-check, seeded so a failure reproduces): whatever bytes or
 * JSON a kernel sends, the frame codec and the message validators either return a frame or a
 * message whose every field keeps the rules of docs/protocol.md §1, docs/protocol.md §4 and docs/protocol.md §6.3, or throw a
 * `ProtocolError` naming the field or rule (docs/protocol.md §8). No other exception may escape into the socket
 * loop, where it would become an `internal` error instead of the named one.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KERN_INVALID_ADDRESS,
  KERN_INVALID_ARGUMENT,
  ProtocolError,
  TokenError,
  checkPageRange,
  decodeFrame,
  encodeFrame,
  pageSpanOf,
  parseKernelMessage,
  signToken,
  spansOverlap,
  verifyToken,
  type Frame,
  type Grant,
  type KernelMessage,
} from "../schema";
import { binaryFrame } from "./helpers/frames";
import {
  FIELDS,
  FIELD_NAMES,
  MESSAGE_TYPES as TYPES,
  isDocumentedMessage,
  keepsRule,
  type FieldRule,
} from "./helpers/message-rules";

// One seed for the whole file: a failure prints its counterexample and replays identically.
const SEED = 42;
fc.configureGlobal({ seed: SEED, numRuns: 300 });

/** Runs `f`; returns its value, or the ProtocolError it threw. Any other throw fails the property. */
function outcome<T>(f: () => T): { ok: true; value: T } | { ok: false; error: ProtocolError } {
  try {
    return { ok: true, value: f() };
  } catch (error) {
    if (!(error instanceof ProtocolError)) {
      throw new Error(`not a ProtocolError escaped: ${String(error)}`, { cause: error });
    }
    return { ok: false, error };
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Every UTF-16 code unit, lone surrogates included (what a JS string may hold). */
const anyString = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  fc.string({ unit: "binary" }),
  fc.string(),
);

/** Numbers a hostile kernel or a sloppy client might send: edges of every rule, and worse. */
const nastyNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.maxSafeInteger(),
  fc.constantFrom(
    0,
    -0,
    1,
    -1,
    0.5,
    1.5,
    3,
    7,
    8,
    0x7f,
    0x80,
    255,
    256,
    511,
    512,
    4096,
    4097,
    65536,
    131072,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32,
    2 ** 32 + 1,
    2 ** 32 + 2,
    2 ** 33 + 0x44,
    2 ** 53 - 1,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 64,
    1e300,
    -1e300,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    Number.EPSILON,
    NaN,
    Infinity,
    -Infinity,
  ),
);

/** Any value a field could hold: numbers, numeric-looking strings, nested objects, arrays. */
const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: nastyNumber },
  fc.constantFrom("1", "0", "4096", "NaN", "Infinity", "-1", "", "0x10", "true", "1e3"),
  anyString,
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(nastyNumber, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), nastyNumber, { maxKeys: 3 }),
  fc.anything({ maxDepth: 2 }),
);

/** A value that keeps the rule. */
function validValue(rule: FieldRule): fc.Arbitrary<unknown> {
  switch (rule) {
    case "positive":
      return fc.oneof(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1 }),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      );
    case "count":
      return fc.oneof(
        fc.nat({ max: 1 << 20 }),
        fc.nat().map((n) => n * 4096),
        fc.maxSafeNat(),
        fc.constant(0),
      );
    case "page_size":
      return fc.integer({ min: 9, max: 16 }).map((k) => 2 ** k);
    case "protection":
      return fc.integer({ min: 0, max: 7 });
    case "boolean":
      return fc.boolean();
    case "sync_flags":
      return fc.integer({ min: 0, max: 0x7f }).filter((f) => (f & 3) !== 3);
  }
}

/** A value that breaks the rule. */
function invalidValue(rule: FieldRule): fc.Arbitrary<unknown> {
  const edges: Record<FieldRule, unknown[]> = {
    positive: [0, -0, -1, 0.5, 2 ** 53, 2 ** 64, NaN, Infinity, "1", null, true],
    count: [-1, 1.5, 2 ** 53, 2 ** 53 + 2, 1e300, NaN, -Infinity, "0", null, [0]],
    page_size: [0, 256, 511, 513, 1000, 4095, 131072, 2 ** 31, 2 ** 32, 4096.5, "4096", NaN],
    protection: [-1, 8, 0.5, 255, 2 ** 32 + 1, "1", NaN, null],
    boolean: [0, 1, "true", "false", null, [], {}],
    sync_flags: [
      3,
      0x7f,
      0x80,
      0x102,
      2 ** 31,
      2 ** 32,
      2 ** 32 + 2,
      2 ** 40 + 4,
      2 ** 53,
      1e300,
      -1,
      1.5,
      NaN,
      Infinity,
      "2",
      null,
    ],
  };
  return fc.oneof(
    fc.constantFrom(...edges[rule]),
    nastyValue.filter((v) => v !== undefined && !keepsRule(rule, v)),
  );
}

/** A valid message of `type` (a header; data_return also needs its payload). */
function validHeader(type: KernelMessage["type"]): fc.Arbitrary<Record<string, unknown>> {
  const fields = Object.fromEntries(
    Object.entries(FIELDS[type]).map(([name, rule]) => [name, validValue(rule)]),
  );
  return fc.record(fields).map((f) => ({ type, ...f }));
}

/** A valid message of `type`, with the payload it needs. */
function validFrameOf(type: KernelMessage["type"]): fc.Arbitrary<Frame> {
  if (type !== "memory_object_data_return") {
    return validHeader(type).map((header) => ({ header, payload: null }));
  }
  return fc
    .tuple(validHeader(type), fc.uint8Array({ maxLength: 64 }))
    .map(([header, payload]) => ({ header: { ...header, length: payload.byteLength }, payload }));
}

/** A valid message of any type. */
const validFrame: fc.Arbitrary<Frame> = fc.constantFrom(...TYPES).chain(validFrameOf);

/**
 * Checks an accepted message against the documented rules, independently of schema/fields.ts:
 * every field of its type present and keeping its rule, copied unchanged, nothing else added.
 */
function expectKeepsRules(message: KernelMessage, frame: Frame): void {
  expect(isDocumentedMessage(frame)).toBe(true);
  expect(message.type).toBe(frame.header.type);
  const fields = FIELDS[message.type];
  const expectedKeys = Object.keys(fields).concat("type");
  if (message.type === "memory_object_data_return") {
    expectedKeys.push("data");
    expect(frame.payload).not.toBeNull();
    expect(message.data).toBe(frame.payload);
    expect(message.length).toBe(frame.payload!.byteLength);
  }
  expect(Object.keys(message).sort()).toEqual(expectedKeys.sort());
  for (const [name, rule] of Object.entries(fields)) {
    const value = (message as unknown as Record<string, unknown>)[name];
    expect(keepsRule(rule, value), `${name} = ${fc.stringify(value)} breaks "${rule}"`).toBe(true);
    expect(Object.is(value, frame.header[name]), `${name} was altered`).toBe(true);
  }
}

/** The error of a rejected message names a field (then its rule) or the unknown type. */
function expectNamedRejection(error: ProtocolError): void {
  expect(error.kernReturn).toBe(KERN_INVALID_ARGUMENT);
  expect(["bad_field", "unknown_type"]).toContain(error.code);
  if (error.code === "unknown_type") {
    expect(error.message).toMatch(/^unknown message type /);
  } else {
    const named = ["type", "memory_object_data_return", ...FIELD_NAMES].find((f) =>
      error.message.startsWith(`${f} `),
    );
    expect(named, `"${error.message}" names no field`).toBeDefined();
    expect(error.message.length).toBeGreaterThan(named!.length + 5);
  }
}

/** decodeFrame's errors: the frame layout (bad_frame) or its JSON (bad_json). */
function expectFrameRejection(error: ProtocolError): void {
  expect(error.kernReturn).toBe(KERN_INVALID_ARGUMENT);
  expect(["bad_frame", "bad_json"]).toContain(error.code);
  expect(error.message).toMatch(/binary frame|header|JSON|UTF-8/);
}

/** The whole path of a frame in the socket loop: decode, then parse. */
function expectDecodesOrNamesRule(data: string | Uint8Array): void {
  const decoded = outcome(() => decodeFrame(data));
  if (!decoded.ok) return expectFrameRejection(decoded.error);
  const frame = decoded.value;
  expect(typeof frame.header === "object" && !Array.isArray(frame.header)).toBe(true);
  expect(frame.header).not.toBeNull();
  const parsed = outcome(() => parseKernelMessage(frame));
  if (parsed.ok) expectKeepsRules(parsed.value, frame);
  else expectNamedRejection(parsed.error);
}

const utf8 = new TextEncoder();

/**
 * JSON texts a JS `JSON.stringify` never writes but a hostile kernel can: number literals that
 * parse to Infinity, -0, unsafe or rounded integers, duplicate keys, a BOM, nesting.
 */
const rawNumberLiteral = fc.constantFrom(
  "1e999",
  "-1e999",
  "-0",
  "0.0",
  "4096.0",
  "1e2",
  "9007199254740993",
  "9007199254740992",
  "18446744073709551616",
  "4294967296",
  "4294967298",
  "1E-400",
  "0.5",
  "-1",
  "3",
);
const hostileJsonText = fc
  .tuple(
    fc.constantFrom(...TYPES, "bogus", "__proto__", "constructor", "toString", ""),
    fc.subarray(FIELD_NAMES),
    fc.array(rawNumberLiteral, { minLength: FIELD_NAMES.length, maxLength: FIELD_NAMES.length }),
    fc.constantFrom("", "\ufeff", " \n\t"),
    fc.constantFrom("", ',"id":1', ',"type":"received"', ',"payload":{"a":[1,{}]}'),
  )
  .map(([type, fields, literals, prefix, extra]) => {
    const members = fields.map((name, i) => `"${name}":${literals[i]}`);
    return `${prefix}{"type":${JSON.stringify(type)}${members.map((m) => `,${m}`).join("")}${extra}}`;
  });

// ---------------------------------------------------------------------------------------------

describe("decodeFrame on arbitrary input", () => {
  it("any string decodes to a JSON object or is rejected naming the rule", () => {
    fc.assert(
      fc.property(fc.oneof(anyString, fc.json(), hostileJsonText), (text) => {
        expectDecodesOrNamesRule(text);
      }),
    );
  });

  it("any byte string decodes or is rejected naming the rule", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => expectDecodesOrNamesRule(bytes)),
    );
  });

  it("a header-length prefix that lies (too long, too short, huge) never escapes as another error", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.json(), hostileJsonText, anyString),
        fc.uint8Array({ maxLength: 32 }),
        fc.oneof(fc.integer({ min: -4, max: 4 }), fc.constantFrom(2 ** 31, 2 ** 32 - 1)),
        (text, payload, lie) => {
          const header = utf8.encode(text);
          const length = lie > 4 || lie < -4 ? lie : Math.max(0, header.byteLength + lie);
          expectDecodesOrNamesRule(binaryFrame(header, payload, length));
        },
      ),
    );
  });

  it("a header of arbitrary bytes (invalid UTF-8, BOM, NUL) is rejected or decodes to an object", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 24 }),
          fc.constantFrom(
            Uint8Array.of(0xef, 0xbb, 0xbf, 0x7b, 0x7d), // BOM then {}
            Uint8Array.of(0x7b, 0xc3, 0x7d), // truncated sequence
            Uint8Array.of(0xed, 0xa0, 0x80), // encoded surrogate
            Uint8Array.of(0x7b, 0x7d, 0x00), // {} then NUL
            Uint8Array.of(0xf4, 0x90, 0x80, 0x80), // above U+10FFFF
          ),
        ),
        fc.uint8Array({ maxLength: 16 }),
        (header, payload) => expectDecodesOrNamesRule(binaryFrame(header, payload)),
      ),
    );
  });
});

describe("encodeFrame ∘ decodeFrame", () => {
  const header = fc.dictionary(anyString, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 8 });

  it("round-trips arbitrary headers and payloads, from a Uint8Array, an ArrayBuffer or a view", () => {
    fc.assert(
      fc.property(
        header,
        fc.uint8Array({ maxLength: 256 }),
        fc.nat({ max: 7 }),
        (h, payload, shift) => {
          const frame = encodeFrame(h, payload);
          // What JSON keeps of the header (-0 becomes 0; lone surrogates become U+FFFD in UTF-8).
          const expected = JSON.parse(new TextDecoder().decode(utf8.encode(JSON.stringify(h))));
          const copy = new Uint8Array(shift + frame.byteLength);
          copy.set(frame, shift);
          for (const input of [frame, frame.slice().buffer, copy.subarray(shift)]) {
            const decoded = decodeFrame(input);
            expect(decoded.header).toEqual(expected);
            expect(decoded.payload).toEqual(payload);
          }
        },
      ),
    );
  });

  it("a valid message survives encoding as text or binary and parses to itself", () => {
    fc.assert(
      fc.property(validFrame, (frame) => {
        const data =
          frame.payload === null
            ? JSON.stringify(frame.header)
            : encodeFrame(frame.header, frame.payload);
        const decoded = decodeFrame(data);
        const message = parseKernelMessage(decoded);
        expectKeepsRules(message, decoded);
        const { data: _data, ...fields } = message as KernelMessage & { data?: unknown };
        expect(fields).toEqual(frame.header);
      }),
    );
  });
});

describe("parseKernelMessage on arbitrary objects", () => {
  const keys = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...FIELD_NAMES, "type") },
    fc.string({ maxLength: 8 }),
  );
  const typeValue = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...TYPES) },
    fc.constantFrom("__proto__", "constructor", "hasOwnProperty", "toString", "MEMORY_OBJECT_INIT"),
    nastyValue,
  );
  const payload = fc.option(fc.uint8Array({ maxLength: 32 }), { nil: null });

  it("any object either parses to a message keeping every rule or is rejected naming one", () => {
    fc.assert(
      fc.property(
        fc.dictionary(keys, nastyValue, { maxKeys: 8 }),
        typeValue,
        payload,
        (fields, type, bytes) => {
          const frame = { header: { ...fields, type }, payload: bytes };
          const parsed = outcome(() => parseKernelMessage(frame));
          if (parsed.ok) expectKeepsRules(parsed.value, frame);
          else expectNamedRejection(parsed.error);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("hostile JSON texts (1e999, -0, 2^53+1, BOM, prototype keys) parse only to valid messages", () => {
    fc.assert(fc.property(hostileJsonText, (text) => expectDecodesOrNamesRule(text)));
  });

  it("a valid message parses to exactly its fields; unknown fields are ignored", () => {
    fc.assert(
      fc.property(
        validFrame,
        fc.dictionary(
          fc.string({ maxLength: 8 }).filter((k) => !FIELD_NAMES.includes(k) && k !== "type"),
          nastyValue,
          { maxKeys: 4 },
        ),
        (frame, extra) => {
          const message = parseKernelMessage({
            header: { ...extra, ...frame.header },
            payload: frame.payload,
          });
          expectKeepsRules(message, frame);
        },
      ),
    );
  });

  const mutation = fc
    .constantFrom(...TYPES)
    .chain((type) => fc.tuple(validFrameOf(type), fc.constantFrom(...Object.keys(FIELDS[type]))));

  it("a valid message with one field deleted is rejected naming that field", () => {
    fc.assert(
      fc.property(mutation, ([frame, field]) => {
        const { [field]: _gone, ...header } = frame.header;
        const parsed = outcome(() => parseKernelMessage({ header, payload: frame.payload }));
        expect(parsed.ok).toBe(false);
        if (parsed.ok) return;
        expectNamedRejection(parsed.error);
        expect(parsed.error.message).toMatch(new RegExp(`^${field} `));
      }),
    );
  });

  it("a valid message with one field retyped, out of range, huge or NaN is rejected naming it", () => {
    fc.assert(
      fc.property(
        mutation.chain(([frame, field]) => {
          const rule = FIELDS[frame.header.type as KernelMessage["type"]][field]!;
          return fc.tuple(fc.constant(frame), fc.constant(field), invalidValue(rule));
        }),
        ([frame, field, value]) => {
          const header = { ...frame.header, [field]: value };
          const parsed = outcome(() => parseKernelMessage({ header, payload: frame.payload }));
          expect(parsed.ok, `${field} = ${fc.stringify(value)} was accepted`).toBe(false);
          if (parsed.ok) return;
          expectNamedRejection(parsed.error);
          expect(parsed.error.message).toMatch(new RegExp(`^${field} `));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("sync_flags beyond 32 bits are not read modulo 2^32", () => {
    // Found by the property above: `flags & ~0x7f` sees only the low 32 bits, so 2^32 + 2 passed
    // as VM_SYNC_SYNCHRONOUS and 2^40 + 4 as INVALIDATE.
    for (const sync_flags of [2 ** 32, 2 ** 32 + 2, 2 ** 40 + 4, 2 ** 53 - 1, 2 ** 53, 1e300]) {
      const header = { type: "memory_object_synchronize", id: 1, offset: 0, length: 1, sync_flags };
      const parsed = outcome(() => parseKernelMessage({ header, payload: null }));
      expect(parsed.ok, `sync_flags ${sync_flags} was accepted`).toBe(false);
      if (!parsed.ok) expect(parsed.error.message).toMatch(/^sync_flags /);
    }
  });

  it("a data_return whose payload is missing or of another length is rejected", () => {
    fc.assert(
      fc.property(
        validHeader("memory_object_data_return"),
        fc.option(fc.uint8Array({ maxLength: 32 }), { nil: null }),
        (header, payload) => {
          fc.pre(payload === null || payload.byteLength !== header.length);
          const parsed = outcome(() => parseKernelMessage({ header, payload }));
          expect(parsed.ok).toBe(false);
          if (parsed.ok) return;
          expectNamedRejection(parsed.error);
          expect(parsed.error.message).toMatch(
            payload === null ? /^memory_object_data_return .*binary frame/ : /^length .*payload/,
          );
        },
      ),
    );
  });
});

describe("checkPageRange and pageSpanOf", () => {
  const pageSize = fc.integer({ min: 9, max: 16 }).map((k) => 2 ** k);
  const geometry = fc.record({
    pageSize,
    maxTransfer: fc.integer({ min: 1, max: 32 }).map((m) => m * 65536),
    maxSize: fc.oneof(
      fc.constant(2 ** 40),
      fc.integer({ min: 1, max: 2 ** 30 }),
      fc.integer({ min: 1, max: 2 ** 50 }),
    ),
  });
  /** Offsets and lengths near the rules' edges: page multiples, near max_size, arbitrary. */
  const byteCount = (ps: number, near: number) =>
    fc.oneof(
      fc.nat({ max: 40 }).map((n) => n * ps),
      fc.integer({ min: -3, max: 3 }).map((n) => Math.max(0, near + n * ps)),
      fc.nat({ max: 1 << 24 }),
      fc.maxSafeNat(),
    );

  it("accepts exactly the aligned page ranges within max_transfer and max_size, covering them", () => {
    fc.assert(
      fc.property(
        geometry.chain((g) =>
          fc.tuple(
            fc.constant(g),
            byteCount(g.pageSize, g.maxSize),
            byteCount(g.pageSize, g.maxTransfer),
          ),
        ),
        ([g, offset, length]) => {
          const ps = g.pageSize;
          const result = outcome(() => checkPageRange(offset, length, g));
          const expected =
            offset % ps !== 0
              ? "offset"
              : length === 0 || length % ps !== 0 || length > g.maxTransfer
                ? "length"
                : offset + length > g.maxSize
                  ? "out_of_range"
                  : "ok";
          if (result.ok) {
            expect(expected).toBe("ok");
            const span = result.value;
            expect(span.first * ps).toBe(offset);
            expect(span.end * ps).toBe(offset + length);
            expect(span).toEqual(pageSpanOf(offset, length, ps));
            return;
          }
          const { error } = result;
          if (expected === "out_of_range") {
            expect(error.kernReturn).toBe(KERN_INVALID_ADDRESS);
            expect(error.code).toBe("out_of_range");
            expect(error.message).toMatch(/exceeds max_size/);
          } else {
            expect(error.kernReturn).toBe(KERN_INVALID_ARGUMENT);
            expect(error.code).toBe("bad_field");
            expect(error.message).toMatch(new RegExp(`^${expected} `));
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("pageSpanOf covers exactly the pages the byte range touches (rounded outward)", () => {
    fc.assert(
      fc.property(
        pageSize,
        fc.oneof(fc.nat({ max: 1 << 20 }), fc.nat({ max: 2 ** 45 })),
        fc.oneof(fc.constant(0), fc.nat({ max: 1 << 18 }), fc.nat({ max: 2 ** 30 })),
        (ps, offset, length) => {
          const span = pageSpanOf(offset, length, ps);
          expect(span.first).toBe(Math.floor(offset / ps));
          expect(span.end).toBeGreaterThanOrEqual(span.first);
          const touches = (page: number) =>
            length > 0 && page * ps < offset + length && (page + 1) * ps > offset;
          // Every page in the span is touched, and the pages just outside it are not.
          for (const page of [span.first - 1, span.first, span.first + 1, span.end - 2]) {
            if (page >= 0) expect(touches(page)).toBe(page >= span.first && page < span.end);
          }
          for (const page of [span.end - 1, span.end, span.end + 1]) {
            if (page >= 0) expect(touches(page)).toBe(page >= span.first && page < span.end);
          }
          if (length === 0) expect(span.end).toBe(span.first);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("spansOverlap is symmetric, and for non-empty spans means a shared page", () => {
    const span = fc
      .tuple(fc.nat({ max: 24 }), fc.nat({ max: 8 }))
      .map(([first, n]) => ({ first, end: first + n }));
    fc.assert(
      fc.property(span, span, (a, b) => {
        expect(spansOverlap(a, b)).toBe(spansOverlap(b, a));
        if (a.end > a.first && b.end > b.first) {
          let shared = false;
          for (let p = a.first; p < a.end; p++) shared ||= p >= b.first && p < b.end;
          expect(spansOverlap(a, b)).toBe(shared);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("byte ranges that overlap have overlapping page spans", () => {
    fc.assert(
      fc.property(
        pageSize,
        fc.nat({ max: 1 << 20 }),
        fc.integer({ min: 1, max: 1 << 16 }),
        fc.nat({ max: 1 << 20 }),
        fc.integer({ min: 1, max: 1 << 16 }),
        (ps, o1, l1, o2, l2) => {
          const bytesOverlap = o1 < o2 + l2 && o2 < o1 + l1;
          if (bytesOverlap) {
            expect(spansOverlap(pageSpanOf(o1, l1, ps), pageSpanOf(o2, l2, ps))).toBe(true);
          }
        },
      ),
    );
  });
});

describe("verifyToken on arbitrary strings", () => {
  const SECRET = "property-secret";
  const NOW = 1_900_000_000;
  const base64urlChars = fc.string({
    unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
    maxLength: 60,
  });
  const almostBase64 = fc.string({
    unit: fc.constantFrom(..."AZaz09-_+/=.% \u00e9\ud800"),
    maxLength: 20,
  });

  /** Resolves to a grant keeping the documented shape, or rejects with TokenError only. */
  async function expectGrantOrTokenError(secret: string, token: string): Promise<void> {
    let grant: Grant;
    try {
      grant = await verifyToken(secret, token, NOW);
    } catch (error) {
      if (!(error instanceof TokenError)) {
        throw new Error(`not a TokenError escaped: ${String(error)}`, { cause: error });
      }
      expect(error.message).toMatch(/token/);
      return;
    }
    expect(typeof grant.object).toBe("string");
    expect(grant.object.length).toBeGreaterThan(0);
    expect(grant.rights.every((r) => ["read", "write", "admin"].includes(r))).toBe(true);
    expect(grant.exp).toBeGreaterThan(NOW);
  }

  it("rejects any string with TokenError and nothing else", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          anyString,
          fc
            .tuple(fc.constantFrom("ep1", "ep2", "", "EP1"), almostBase64, almostBase64)
            .map(([v, p, s]) => `${v}.${p}.${s}`),
          fc.tuple(base64urlChars, base64urlChars).map(([p, s]) => `ep1.${p}.${s}`),
          fc.array(base64urlChars, { maxLength: 5 }).map((parts) => parts.join(".")),
        ),
        (token) => expectGrantOrTokenError(SECRET, token),
      ),
    );
  });

  it("a validly signed token over any JSON (or non-JSON) payload gives a grant or TokenError", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.anything({ maxDepth: 2 }),
          fc.record({
            object: nastyValue,
            rights: fc.oneof(
              fc.array(fc.constantFrom("read", "write", "admin", "root")),
              nastyValue,
            ),
            exp: nastyValue,
          }),
        ),
        anyString.filter((s) => s.length > 0),
        async (payload, secret) => {
          const token = await signToken(secret, payload as Grant);
          await expectGrantOrTokenError(secret, token);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a signed token with one character changed is refused with TokenError", async () => {
    const grant: Grant = { object: "tenant-a.*", rights: ["read", "write"], exp: NOW + 3600 };
    const token = await signToken(SECRET, grant);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.nat({ max: token.length - 1 }), fc.constant(token.length - 1)),
        fc.constantFrom(
          ..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \u00ff",
        ),
        async (at, char) => {
          fc.pre(token[at] !== char);
          const mutated = token.slice(0, at) + char + token.slice(at + 1);
          // Even the signature's last character, whose two spare bits a lenient decoder drops:
          // only the canonical text verifies.
          await expect(verifyToken(SECRET, mutated, NOW)).rejects.toThrow(TokenError);
        },
      ),
      { numRuns: 300 },
    );
  });
});
