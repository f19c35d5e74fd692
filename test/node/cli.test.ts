/**
 * The `edgepager` CLI end to end: the real Worker on a loopback port (wrangler's test harness),
 * driven only through `node dist/cli.js …` child processes, checking exit codes, stdout and
 * stderr as a script would. Also keeps the generated part of docs/cli.md equal to the `--help` output.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestHarness, type TestHarness } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KernelConnection, PageCache } from "../../client";
import { COMMANDS } from "../../client/cli/program";
import { signToken, type Right } from "../../schema";
import { ROOT, buildCliIfStale, cliEnv, runCli, startCli, type RunningCli } from "./cli-process";
import { expectGeneratedSection } from "./generated-section";

Object.assign(process.env, {
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_SEND_METRICS: "false",
});

/** INVALIDATE gives up on a kernel that does not answer after this long (docs/protocol.md §6.6). */
const LOCK_TIMEOUT_MS = 3000;
/** Authentication is on, as deployed: every run carries a token (EDGEPAGER_TOKEN or --token). */
const AUTH_SECRET = "cli-test-secret";

let server: TestHarness;
let url: string;
let env: NodeJS.ProcessEnv;
let scratch: string;

beforeAll(async () => {
  await buildCliIfStale();
  server = createTestHarness({
    workers: [
      {
        configPath: "./wrangler.toml",
        vars: { REQUIRE_AUTH: "true", LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS) },
        secrets: { AUTH_SECRET },
      },
    ],
  });
  url = (await server.listen()).url.toString().replace(/\/$/, "");
  env = cliEnv({
    EDGEPAGER_URL: url,
    EDGEPAGER_TOKEN: await token("*", ["read", "write", "admin"]),
  });
  scratch = mkdtempSync(join(tmpdir(), "edgepager-cli-"));
}, 60_000);

afterAll(async () => {
  for (const watcher of watchers) watcher.child.kill("SIGKILL"); // left by a failed test
  await server?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const cli = (...args: string[]) => runCli(args, env);
const watchers: RunningCli[] = [];
const watch = (...args: string[]) => {
  const watcher = startCli(["watch", ...args], env);
  watchers.push(watcher);
  return watcher;
};
const token = (object: string, rights: Right[]) =>
  signToken(AUTH_SECRET, { object, rights, exp: Math.floor(Date.now() / 1000) + 3600 });
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const json = (result: { stdout: Buffer }) => JSON.parse(result.stdout.toString());

function scratchFile(name: string, bytes: Uint8Array): string {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  return path;
}

describe("put and get", () => {
  it("uploads 16 MiB and reads it back bit-identical", async () => {
    const data = randomBytes(16 * 1024 * 1024);
    const file = scratchFile("random16", data);

    const put = await cli("put", "big", file);
    expect(put.stderr).toBe(""); // no progress bar when stderr is not a terminal
    expect(put.code).toBe(0);
    expect(put.stdout.toString()).toMatch(
      /^put big: 16\.0 MiB \(16777216 bytes, 4096 pages of 4096\)/,
    );

    const get = await cli("get", "big");
    expect(get.code).toBe(0);
    expect(get.stdout.length).toBe(data.length);
    expect(sha256(get.stdout)).toBe(sha256(data));

    // put ends with a SYNCHRONOUS synchronize and terminates its kernel.
    const status = json(await cli("stat", "big", "--json"));
    expect(status).toMatchObject({
      pages: 4096,
      bytes: data.length,
      journal_pages: 0,
      kernels: [],
    });
  });

  it("zero-pads the last page, sets the object's size to the file's end, reads any range, in chunks, to a file", async () => {
    const data = randomBytes(10_000);
    const file = scratchFile("random10k", data);
    const put = json(await cli("--json", "put", "small", file, "--kernel", "uploader"));
    expect(put).toMatchObject({
      object: "small",
      kernel: "uploader",
      bytes: 10_000,
      padded_bytes: 12_288,
      pages: 3,
      page_size: 4096,
    });

    // By default `get` reads the object's size: the file, exactly (docs/protocol.md §13).
    const whole = await cli("get", "small");
    expect(whole.stdout).toEqual(data);
    const padded = await cli("get", "small", "--length", "12288");
    expect(padded.stdout).toEqual(Buffer.concat([data, Buffer.alloc(12_288 - 10_000)]));
    const slice = await cli("get", "small", "--offset", "5000", "--length", "3000");
    expect(slice.stdout).toEqual(data.subarray(5000, 8000));
    const chunked = await cli("get", "small", "--length", "10000", "--chunk-size", "4097");
    expect(sha256(chunked.stdout)).toBe(sha256(data));

    const output = join(scratch, "out.bin");
    const toFile = await cli("get", "small", "--length", "10000", "-o", output, "--json");
    expect(toFile.code).toBe(0);
    expect(json(toFile)).toEqual({ object: "small", offset: 0, length: 10_000, output });
    expect(sha256(readFileSync(output))).toBe(sha256(data));
  });

  it("puts at a page-aligned offset and refuses a misaligned one", async () => {
    const data = randomBytes(4096);
    const file = scratchFile("page", data);
    expect((await cli("put", "offsets", file, "--offset", "8192")).code).toBe(0);
    const back = await cli("get", "offsets", "--offset", "8192", "--length", "4096");
    expect(back.stdout).toEqual(data);
    const misaligned = await cli("put", "offsets", file, "--offset", "100");
    expect(misaligned.code).toBe(64);
    expect(misaligned.stderr).toContain("--offset must be a multiple of the page size (4096)");
  });
});

describe("ls", () => {
  it("lists objects by prefix, human and --json, and forgets a removed one", async () => {
    for (const name of ["ls-a.one", "ls-a.two", "ls-b"]) {
      expect((await cli("put", name, scratchFile(`${name}-page`, randomBytes(4096)))).code).toBe(0);
    }
    const listed = await cli("ls", "ls-a.");
    expect(listed.code).toBe(0);
    const lines = listed.stdout.toString().trim().split("\n");
    expect(lines[0]).toMatch(/^OBJECT +PAGE SIZE +MODE +PAGES +BYTES +CREATED +LAST ACTIVITY$/);
    expect(lines.slice(1).map((line) => line.split(/ +/)[0])).toEqual(["ls-a.one", "ls-a.two"]);
    // The figures follow the first flush shortly after (a directory entry is refreshed after
    // it, not before the completion): ask until they are there.
    for (let tries = 0; tries < 50; tries++) {
      const { objects } = json(await cli("ls", "ls-a.", "--json"));
      if (objects.every((o: { pages: number }) => o.pages === 1)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(json(await cli("ls", "ls-a.", "--json"))).toMatchObject({
      objects: [
        { object: "ls-a.one", page_size: 4096, coherent: false, pages: 1, bytes: 4096 },
        { object: "ls-a.two", page_size: 4096, coherent: false, pages: 1, bytes: 4096 },
      ],
    });
    expect((await cli("rm", "ls-a.one")).code).toBe(0);
    expect(
      json(await cli("ls", "ls-a.", "--json")).objects.map((o: { object: string }) => o.object),
    ).toEqual(["ls-a.two"]);
    expect((await cli("ls", "ls-nothing")).stdout.toString()).toBe(
      'no object starts with "ls-nothing"\n',
    );
  });
});

describe("stat of kernels", () => {
  it("shows each kernel connected or not, its last id, and stale once it departed holding pages", async () => {
    const kernel = await KernelConnection.connect({
      url,
      object: "stat-stale",
      kernel: "k1",
      token: await token("stat-stale", ["read", "write"]),
      coherent: true,
    });
    await new PageCache(kernel).read(0, 4096);
    const line = async () => (await cli("stat", "stat-stale")).stdout.toString();
    expect(await line()).toMatch(/^kernels {5}k1 \(connected, last id 0\)$/m);
    // Closed while it held a page of a coherent object: it departed (docs/protocol.md §10.5).
    kernel.close();
    let shown = "";
    for (let tries = 0; tries < 50 && !shown.includes("stale"); tries++) {
      shown = await line();
      if (!shown.includes("stale")) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(shown).toMatch(/^kernels {5}k1 \(disconnected, last id 0, stale\)$/m);
  });
});

describe("stat, syncs, rm", () => {
  it("prints status, outstanding syncs and deletion, human and --json", async () => {
    await cli("put", "listed", scratchFile("two-pages", randomBytes(8192)));

    const stat = await cli("stat", "listed");
    expect(stat.code).toBe(0);
    expect(stat.stdout.toString()).toMatch(/^object {6}listed$/m);
    expect(stat.stdout.toString()).toMatch(/^page size {3}4096$/m);
    expect(stat.stdout.toString()).toMatch(/^pages {7}2 \(8\.0 KiB\)$/m);
    expect(stat.stdout.toString()).toMatch(/^kernels {5}none$/m);
    expect(json(await cli("--json", "stat", "listed"))).toMatchObject({
      object: "listed",
      page_size: 4096,
      pages: 2,
      bytes: 8192,
      syncs: 0,
    });

    const syncs = await cli("syncs", "listed");
    expect(syncs.stdout.toString()).toBe("no outstanding synchronize requests\n");
    expect(json(await cli("syncs", "listed", "--json"))).toEqual({ syncs: [] });

    const rm = await cli("rm", "listed");
    expect(rm.stdout.toString()).toBe("deleted listed\n");
    expect(json(await cli("stat", "listed", "--json"))).toMatchObject({
      page_size: null,
      pages: 0,
    });
    expect(json(await cli("rm", "listed", "--json"))).toEqual({ object: "listed", deleted: true });
  });

  it("lists a synchronize that waits on a kernel that does not answer", async () => {
    await cli("put", "stuck", scratchFile("stuck", randomBytes(4096)));
    const watcher = watch("stuck", "--cache", "0:4096", "--json");
    await watcher.waitForLine((line) => line.includes('"event":"cached"'));
    watcher.child.kill("SIGSTOP"); // caches the page, cannot answer the lock request
    try {
      const sync = cli("sync", "stuck", "--length", "4096", "--flags", "INVALIDATE");
      let listed: Record<string, unknown>[] = [];
      for (let i = 0; i < 50 && listed.length === 0; i++) {
        listed = json(await cli("syncs", "stuck", "--json")).syncs;
      }
      expect(listed).toEqual([
        expect.objectContaining({ kernel: "http", offset: 0, length: 4096, sync_flags: 4 }),
      ]);
      const table = (await cli("syncs", "stuck")).stdout.toString().split("\n");
      expect(table[0]).toMatch(/^KERNEL +ID +SEQNO +OFFSET +LENGTH +FLAGS +SINCE$/);
      expect(table[1]).toMatch(/^http +\d+ +\d+ +0 +4096 +INVALIDATE +\S+$/);
      // The manager gives up on the stopped kernel after its lock timeout, then completes.
      expect((await sync).code).toBe(0);
    } finally {
      watcher.child.kill("SIGCONT");
      watcher.child.kill("SIGINT");
    }
    expect((await watcher.exited).code).toBe(0);
  });
});

describe("sync", () => {
  it("synchronizes with the flags given, and reports the manager's refusal", async () => {
    await cli("put", "synced", scratchFile("synced", randomBytes(8192)));

    const plain = await cli("sync", "synced", "--length", "8192");
    expect(plain.code).toBe(0);
    expect(plain.stdout.toString()).toMatch(
      /^synchronized synced offset 0 length 8192 \(SYNCHRONOUS\): seqno \d+, [\d.]+ s\n$/,
    );
    const flagged = await cli(
      "sync",
      "synced",
      "--offset",
      "4096",
      "--length",
      "4096",
      "--flags",
      "vm_sync_asynchronous,Invalidate",
      "--json",
    );
    expect(json(flagged)).toMatchObject({
      type: "memory_object_synchronize_completed",
      offset: 4096,
      length: 4096,
      sync_flags: 5,
    });

    const both = await cli(
      "sync",
      "synced",
      "--length",
      "1",
      "--flags",
      "SYNCHRONOUS,ASYNCHRONOUS",
    );
    expect(both.code).toBe(3);
    expect(both.stderr).toMatch(/^edgepager: KERN_INVALID_ARGUMENT: .*\(bad_field\)\n$/);
    const asJson = await cli(
      "--json",
      "sync",
      "synced",
      "--length",
      "1",
      "--flags",
      "SYNCHRONOUS,ASYNCHRONOUS",
    );
    expect(JSON.parse(asJson.stderr)).toMatchObject({
      error: { exit_code: 3, kern_return: 4, kern_return_name: "KERN_INVALID_ARGUMENT" },
    });
  });
});

describe("watch", () => {
  it("prints lock requests and the object's deletion, then exits 0", async () => {
    await cli("put", "watched", scratchFile("watched", randomBytes(8192)));
    const watcher = watch("watched", "--cache", "0:8192", "--kernel", "watcher");
    await watcher.waitForLine((line) => /\s{2}cached\s+offset=0 length=8192$/.test(line));
    expect(watcher.lines[0]).toMatch(/^\S+Z {2}connected +kernel=watcher page_size=4096 /);

    // The watcher answers at once, so INVALIDATE does not wait for the lock timeout.
    const started = Date.now();
    const sync = await cli(
      "sync",
      "watched",
      "--length",
      "4096",
      "--flags",
      "INVALIDATE,SYNCHRONOUS",
    );
    expect(sync.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(LOCK_TIMEOUT_MS);
    await watcher.waitForLine((line) =>
      /lock_request +lock_id=\d+ offset=0 length=4096 should_return=1 should_flush=true/.test(line),
    );

    expect((await cli("rm", "watched")).code).toBe(0);
    await watcher.waitForLine((line) => /destroyed +reason=/.test(line));
    expect((await watcher.exited).code).toBe(0);
  });

  it("ends on Ctrl-C with exit 0, and the manager forgets its kernel", async () => {
    const watcher = watch("interrupted", "--json");
    const connected = JSON.parse(await watcher.waitForLine((line) => line.includes("connected")));
    expect(connected).toMatchObject({ event: "connected", page_size: 4096, flush: false });
    expect(connected.kernel).toMatch(/^watch-.+-\d+$/);
    const before = json(await cli("stat", "interrupted", "--json"));
    expect(before.kernels).toEqual([
      { kernel: connected.kernel, connected: true, last_id: 0, stale: false },
    ]);

    watcher.child.kill("SIGINT");
    expect((await watcher.exited).code).toBe(0);
    expect(json(await cli("stat", "interrupted", "--json")).kernels).toEqual([]);
  });
});

describe("errors", () => {
  it("rejects bad arguments with exit 64 and says what is wrong", async () => {
    const file = scratchFile("any", randomBytes(10));
    const cases: [string[], RegExp][] = [
      [["sync", "x", "--length", "12abc"], /'12abc' is invalid\. expected a non-negative integer/],
      [["sync", "x", "--length", "-1"], /'-1' is invalid\. expected a non-negative integer/],
      [["get", "x", "--offset", "1e3"], /'1e3' is invalid/],
      [["get", "x", "--chunk-size", "0"], /must be at least 1/],
      [["get", "x", "--chunk-size", "67108865"], /at most 67108864/],
      [["sync", "x"], /required option '--length <bytes>' not specified/],
      [["sync", "x", "--length", "1", "--flags", "SOON"], /unknown flag "SOON"/],
      [["stat", "bad name!"], /an object name is 1-128 characters/],
      [["stat"], /missing required argument 'object'/],
      [["frob"], /unknown command 'frob'/],
      [["stat", "x", "--bogus"], /unknown option '--bogus'/],
      [["--url", "ftp://x", "stat", "x"], /expected an http: or https: URL/],
      [["put", "x", file, "--page-size", "1000"], /a power of two from 512 to 65536/],
      [["put", "x", file, "--kernel", "http"], /"http" is reserved/],
      [["watch", "x", "--cache", "5"], /expected OFFSET:LENGTH/],
      [[], /Usage: edgepager/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(...args)));
    results.forEach((result, i) => {
      expect({ args: cases[i]![0], code: result.code }).toEqual({ args: cases[i]![0], code: 64 });
      expect(result.stderr).toMatch(cases[i]![1]);
    });
  });

  it("names the kern_return the manager answered, exit 3", async () => {
    const result = await cli("get", "x", "--offset", "1099511627776", "--length", "1");
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(
      /^edgepager: KERN_INVALID_ADDRESS: .*max_size.*\(out_of_range\)\n$/,
    );
  });

  it("sends the token over HTTP and the control socket; a refusal is KERN_PROTECTION_FAILURE", async () => {
    const file = scratchFile("guarded", randomBytes(4096));
    const anonymous = await runCli(["stat", "guarded"], cliEnv({ EDGEPAGER_URL: url }));
    expect(anonymous.code).toBe(3);
    expect(anonymous.stderr).toMatch(/^edgepager: KERN_PROTECTION_FAILURE: .*\(unauthorized\)\n$/);
    const readOnly = await token("guarded", ["read"]);
    expect((await cli("--token", readOnly, "stat", "guarded")).code).toBe(0);
    const put = await cli("put", "guarded", file, "--token", readOnly);
    expect(put.code).toBe(3);
    expect(put.stderr).toMatch(/^edgepager: KERN_PROTECTION_FAILURE: /);
    const other = await cli("--token", await token("other", ["read"]), "stat", "guarded");
    expect(other.stderr).toMatch(/KERN_PROTECTION_FAILURE: .*\(forbidden\)/);
  });

  it("reports files it cannot read or write, exit 4", async () => {
    const missing = await cli("put", "x", join(scratch, "missing"));
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/^edgepager: cannot read .*missing: ENOENT/);
    const unwritable = await cli("get", "x", "--length", "1", "-o", join(scratch, "no", "such"));
    expect(unwritable.code).toBe(4);
    expect(unwritable.stderr).toMatch(/^edgepager: cannot write .*such: ENOENT/);
  });

  it("says it cannot reach a closed port, exit 2, for every command", async () => {
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const file = scratchFile("unsent", randomBytes(10));
    const commands = [
      ["stat", "x"],
      ["syncs", "x"],
      ["rm", "x"],
      ["get", "x"],
      ["sync", "x", "--length", "1"],
      ["put", "x", file],
      ["watch", "x"],
    ];
    const results = await Promise.all(commands.map((args) => cli("--url", closed, ...args)));
    for (const result of results) {
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `edgepager: cannot reach the edgepager service at ${closed}: connection refused (ECONNREFUSED)\n`,
      );
    }
  });
});

describe("help and docs/cli.md", () => {
  it("prints --help for every command with exit 0", async () => {
    const main = await runCli(["--help"]);
    expect(main.code).toBe(0);
    for (const command of COMMANDS)
      expect(main.stdout.toString()).toMatch(new RegExp(`^  ${command} `, "m"));
    expect(main.stdout.toString()).toContain("Exit codes:");
    for (const command of COMMANDS) {
      const help = await runCli([command, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout.toString()).toMatch(new RegExp(`^Usage: edgepager ${command} `));
      expect(help.stdout.toString()).toContain("--url <url>"); // global options shown too
    }
  });

  it("keeps docs/cli.md equal to the --help output", async () => {
    // UPDATE_CLI_REFERENCE=1 npx vitest run --project node test/node/cli.test.ts rewrites it.
    expectGeneratedSection(
      {
        path: join(ROOT, "docs/cli.md"),
        begin: "<!-- cli-reference:begin -->\n",
        end: "<!-- cli-reference:end -->",
        updateVariable: "UPDATE_CLI_REFERENCE",
      },
      await cliReference(),
    );
  });
});

/** The generated part of docs/cli.md: each `--help`, in a text block. */
async function cliReference(): Promise<string> {
  const sections: string[] = [];
  for (const command of ["", ...COMMANDS]) {
    const help = await runCli(command ? [command, "--help"] : ["--help"]);
    const title = command ? `edgepager ${command}` : "edgepager";
    sections.push(`### \`${title}\`\n\n\`\`\`text\n${help.stdout.toString().trimEnd()}\n\`\`\`\n`);
  }
  return `\n${sections.join("\n")}\n`;
}

/** A loopback port nothing listens on: listen on port 0, note it, close. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
