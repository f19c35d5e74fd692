// Every reference in the repository leads somewhere in it (test/node/references.ts says what is
// checked). The second test feeds the checker references that lead nowhere, so this one cannot
// pass because the checker finds nothing at all.
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { checkReferences, formatProblems, repositoryFiles } from "./references";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Built, not written out, so this file holds no reference the repository check would report. */
const S = "\u00a7";
const md = (name: string) => `${name}.md`;

it("finds no reference that leads nowhere in the repository", () => {
  const { files, paths } = repositoryFiles(ROOT);
  expect(files.size).toBeGreaterThan(100);
  expect(formatProblems(checkReferences(files, paths))).toBe("");
});

it("reports each kind of reference that leads nowhere, with its file and line", () => {
  const guide = [
    "# Guide",
    "## 1. Start",
    "### 1.2 Detail",
    `Good: ${S}1.2, [here](#12-detail), [there](${md("../other")}#2-end), \`src/code.ts\`.`,
    `Bad: ${S}3, [gone](#nowhere), [away](${md("missing")}), \`src/absent.ts\`.`,
    "```sh",
    "# 3. a shell comment, not a heading",
    "```",
  ].join("\n");
  const code = [
    `// Good: ${md("docs/guide")} ${S}1, ${md("other")} ${S}2, ${md("docs/guide")}.`,
    `// Bad: ${md("docs/guide")} ${S}2, ${md("docs/lost")} ${S}1, bare ${S}4, ${md("lost")}.`,
    `// Outside: the ${md("design")} notes, ${["..", "shared", "notes"].join("/")}.`,
    "// Files: src/code.ts is here, src/moved.ts is not, dist/src/built.js is not ours.",
  ].join("\n");
  const files = new Map([
    [md("docs/guide"), guide],
    [md("other"), "# Other\n\n## 2. End\n"],
    ["src/code.ts", code],
  ]);
  const guideAt = (line: number) => `${md("docs/guide")}:${line}:`;
  expect(formatProblems(checkReferences(files)).split("\n")).toEqual([
    `${guideAt(5)} ${S}3: this file has no section 3`,
    `${guideAt(5)} link to #nowhere: ${md("docs/guide")} has no heading with the anchor #nowhere`,
    `${guideAt(5)} link to ${md("missing")}: ${md("docs/missing")} is not in the repository`,
    `${guideAt(5)} src/absent.ts: no such file or folder`,
    `src/code.ts:2: ${md("docs/guide")} ${S}2: ${md("docs/guide")} has no section 2`,
    `src/code.ts:2: ${md("docs/lost")} ${S}1: no such file`,
    `src/code.ts:2: ${S}4 names no file: write which document it is in`,
    `src/code.ts:2: ${md("lost")}: no such file in the repository`,
    `src/code.ts:3: ${md("design")}: outside the repository; cite a document in it`,
    `src/code.ts:3: ${["..", "shared"].join("/")}: outside the repository; cite a document in it`,
    "src/code.ts:4: src/moved.ts: no such file",
  ]);
});
