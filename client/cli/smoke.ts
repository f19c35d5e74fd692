/**
 * The smoke test's steps: after a deploy (or against `npm run dev`), the shortest path through
 * the service that proves it works end to end: the Worker answers, a write is journaled, a
 * SYNCHRONOUS synchronize puts it in R2, the bytes read back identical, the status counts them,
 * and the object can be destroyed. Each step times itself and checks what came back; the first
 * failure skips the rest, but an object that may hold pages is still deleted, so a failed run
 * leaves nothing behind in a deployment. Printing is the command's job (commands/smoke.ts).
 */
import { randomBytes, randomFillSync } from "node:crypto";
import { HttpClient } from "../http";
import { VM_SYNC_SYNCHRONOUS } from "../../schema";
import { EXIT } from "./exit-codes";
import { CliError, describeFailure, type Failure } from "./failure";
import { formatBytes } from "./output";

export interface SmokeOptions {
  url: string;
  token?: string;
  /** The fresh object written, read and deleted. */
  object: string;
  pages: number;
  pageSize: number;
  /** How long one step may take before it fails. */
  timeoutMs: number;
  /** Called as each step ends (or is skipped), in order. */
  onStep?: (step: StepResult) => void;
}

type StepStatus = "ok" | "failed" | "skipped";

export interface StepResult {
  step: string;
  status: StepStatus;
  /** What the step does, and after a colon what it found (or why it failed). */
  detail: string;
  ms: number;
  /** Present when the step failed: the message and exit code it means. */
  failure?: Failure;
}

export interface SmokeReport {
  url: string;
  object: string;
  passed: boolean;
  ms: number;
  steps: StepResult[];
  /** The first failure, which decides the exit code. */
  failure?: StepResult & { failure: Failure };
}

interface Step {
  name: string;
  what: string;
  /** Runs even after a failure, once a write was attempted: the clean-up. */
  cleanup?: boolean;
  /** Does the work and checks it; resolves with what it found, throws on anything else. */
  run(): Promise<string>;
}

/** A fresh name for each run: `smoke-<time>-<random>`, so runs never see each other's pages. */
export function smokeObjectName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

/** Runs every step in order and reports each; never throws. */
export async function runSmoke(options: SmokeOptions): Promise<SmokeReport> {
  const started = performance.now();
  const steps: StepResult[] = [];
  let failure: SmokeReport["failure"];
  let wrote = false;
  for (const step of buildSteps(options)) {
    const mayRun = !failure || (step.cleanup && wrote);
    if (mayRun && step.name === "put") wrote = true; // even a put that failed may have landed
    const result = mayRun ? await runStep(step, options) : skipped(step);
    if (result.failure && !failure) failure = { ...result, failure: result.failure };
    steps.push(result);
    options.onStep?.(result);
  }
  const ms = Math.round(performance.now() - started);
  return { url: options.url, object: options.object, passed: !failure, ms, steps, failure };
}

function buildSteps(options: SmokeOptions): Step[] {
  const { url, object, pages, pageSize } = options;
  const http = new HttpClient(url, options.token);
  const length = pages * pageSize;
  const written = randomFillSync(new Uint8Array(length));
  const size = `${pages} pages of ${pageSize} bytes (${formatBytes(length)})`;
  return [
    {
      name: "service",
      what: "GET /",
      run: () => describeService(url),
    },
    {
      name: "put",
      what: `PUT ${size} at offset 0`,
      async run() {
        const reply = await http.write(object, 0, written, pageSize);
        expect(
          reply.offset === 0 && reply.length === length,
          `expected offset 0 length ${length}, got ${show(reply)}`,
        );
        return `accepted, seqno ${reply.seqno}`;
      },
    },
    {
      name: "synchronize",
      what: `POST synchronize of ${formatBytes(length)}, sync_flags ${VM_SYNC_SYNCHRONOUS} (SYNCHRONOUS)`,
      async run() {
        const reply = await http.synchronize(object, 0, length, VM_SYNC_SYNCHRONOUS);
        expect(
          reply.type === "memory_object_synchronize_completed" &&
            reply.offset === 0 &&
            reply.length === length,
          `expected memory_object_synchronize_completed of offset 0 length ${length}, got ${show(reply)}`,
        );
        return `completed (in R2), seqno ${reply.seqno}`;
      },
    },
    {
      name: "read",
      what: `GET pages at offset 0, length ${length}`,
      async run() {
        const read = await http.read(object, 0, length);
        expect(read.length === length, `read ${read.length} bytes, expected ${length}`);
        const at = read.findIndex((byte, index) => byte !== written[index]);
        expect(at < 0, `byte ${at} differs from what was written`);
        return `${length} bytes, identical to what was written`;
      },
    },
    {
      name: "stat",
      what: "GET the object's status",
      async run() {
        const status = await http.stat(object);
        const expected = { page_size: pageSize, pages, bytes: length, journal_pages: 0 };
        const found = {
          page_size: status.page_size,
          pages: status.pages,
          bytes: status.bytes,
          journal_pages: status.journal_pages,
        };
        expect(show(found) === show(expected), `expected ${show(expected)}, got ${show(found)}`);
        return `${status.pages} pages, ${status.bytes} bytes, none left in the journal`;
      },
    },
    {
      name: "delete",
      what: "DELETE the object",
      cleanup: true,
      async run() {
        const reply = await http.remove(object);
        expect(reply.deleted === true, `the reply is ${show(reply)}`);
        return "deleted";
      },
    },
  ];
}

async function runStep(step: Step, options: SmokeOptions): Promise<StepResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new CliError(EXIT.UNREACHABLE, `no answer within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
  });
  try {
    const found = await Promise.race([step.run(), timeout]);
    return { step: step.name, status: "ok", detail: `${step.what}: ${found}`, ms: elapsed() };
  } catch (error) {
    const failure = describeFailure(error, options.url);
    const detail = `${step.what}: ${failure.message}`;
    return { step: step.name, status: "failed", detail, ms: elapsed(), failure };
  } finally {
    clearTimeout(timer);
  }
}

function skipped(step: Step): StepResult {
  return { step: step.name, status: "skipped", detail: step.what, ms: 0 };
}

/** `GET /` answers the service's JSON description (public: no token needed). */
async function describeService(url: string): Promise<string> {
  const response = await fetch(`${url}/`);
  const text = await response.text();
  let body: { service?: unknown; protocol?: unknown; error?: { code?: string; message?: string } };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    body = {};
  }
  if (!response.ok) {
    const reason = body.error
      ? `${body.error.message} (${body.error.code})`
      : text.slice(0, 200) || "no body";
    throw new CliError(EXIT.FAILURE, `HTTP ${response.status}: ${reason}`);
  }
  expect(body.service === "edgepager", `not an edgepager service: ${text.slice(0, 200)}`);
  return `edgepager, protocol ${String(body.protocol)}`;
}

/** A check that failed: the service answered, but not what it should have. */
function expect(condition: boolean, message: string): asserts condition {
  if (!condition) throw new CliError(EXIT.FAILURE, message);
}

function show(value: unknown): string {
  return JSON.stringify(value);
}
