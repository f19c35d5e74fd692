/**
 * Finds references in the repository that a reader could not follow (CONTRIBUTING.md §11). A
 * newcomer reads "see the protocol, section 6.6" in a comment and must find that section here,
 * in a file of this repository; the code cites documents by file and section number, so both
 * can be checked. Reported, with file and line:
 *
 * - a section reference (a file name ending in .md, a space, the section sign and a number such
 *   as 6 or 6.6) whose file is not in the repository, or has no heading that starts with that
 *   number (`## 6. …`, `### 6.6 …`). The file is looked for beside the citing file, then from
 *   the repository's root;
 * - a section sign with a number but no file before it: in code it is ambiguous; in a markdown
 *   file it means a section of that file, which must exist;
 * - a mention of a markdown file (any name ending in .md) that is in neither place;
 * - any mention of the notes that live outside the repository (the shared design and style
 *   notes, or a path into the shared folder beside it): the repository must explain itself;
 * - a path to a file in one of the repository's folders (`durable/journal.ts`, in a comment or
 *   in prose) that does not exist: modules move, and the comments that name them must follow;
 * - in markdown files, a relative link whose target file is missing or, with `#anchor`, has no
 *   heading of that GitHub anchor, and a path in backticks into one of the repository's folders
 *   (`durable/journal.ts`) that does not exist.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";

export interface Problem {
  file: string;
  line: number;
  message: string;
}

/** Files whose text is not ours to check: generated, or data. */
const NOT_SCANNED = [/^package-lock\.json$/, /^worker-configuration\.d\.ts$/, /^bench\/results\./];

/** Binary files in the repository, never read as text. */
const BINARY = /\.(png|jpg|jpeg|gif|ico|wasm|bin)$/i;

const SECTION = "\u00a7";
/** A markdown file name, then a section number: `docs/protocol.md` + section 6.6. */
const SECTION_REFERENCE = new RegExp(
  `(?<![\\w./-])([\\w][\\w./-]*\\.md) ${SECTION}(\\d+(?:\\.\\d+)*)`,
  "g",
);
const ANY_SECTION = new RegExp(`${SECTION}\\s*(\\d+(?:\\.\\d+)*)`, "g");
const MARKDOWN_NAME = /(?<![\w./-])([\w][\w./-]*\.md)(?![\w-])/g;
const OUTSIDE_NOTES = new RegExp(
  [`(?<![\\w-])(design|style)\\.md`, `\\.\\./shared\\b`].join("|"),
  "g",
);
const MARKDOWN_LINK = /\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g;
const BACKTICKED_PATH = /`([\w.-]+(?:\/[\w.-]+)+\/?)`/g;
/** A path to a source or config file, not inside a longer path (`dist/types/client/…`). */
const FILE_PATH = /(?<![\w./-])([\w-]+(?:\/[\w.-]+)+\.(?:ts|mjs|js|json|toml|svg))(?![\w/-])/g;

/** Every tracked or new (not ignored) file of the repository at `root`, with the text of those to scan. */
export function repositoryFiles(root: string): {
  files: Map<string, string>;
  paths: Set<string>;
} {
  const listed = execFileSync(
    "git",
    ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    { cwd: root, encoding: "utf8" },
  )
    .split("\0")
    .filter((path) => path !== "" && existsSync(join(root, path)));
  const paths = new Set(listed);
  const files = new Map<string, string>();
  for (const path of paths) {
    if (BINARY.test(path) || NOT_SCANNED.some((pattern) => pattern.test(path))) continue;
    files.set(path, readFileSync(join(root, path), "utf8"));
  }
  return { files, paths };
}

/**
 * Checks every file of `files` (path → text). `paths` is every file the repository has,
 * scanned or not, for links to files such as images.
 *
 * @example
 * const { files, paths } = repositoryFiles(root);
 * console.log(formatProblems(checkReferences(files, paths)));
 */
export function checkReferences(
  files: ReadonlyMap<string, string>,
  paths: ReadonlySet<string> = new Set(files.keys()),
): Problem[] {
  const problems: Problem[] = [];
  const headings = new Map<string, string[]>();
  const headingsOf = (path: string): string[] => {
    let found = headings.get(path);
    if (!found) headings.set(path, (found = headingTexts(files.get(path) ?? "")));
    return found;
  };
  const directories = topDirectories(paths);

  for (const [file, text] of files) {
    // Each place is reported once, by the most specific rule.
    const reported = new Set<number>();
    const report = (index: number, message: string) => {
      if (reported.has(index)) return;
      reported.add(index);
      problems.push({ file, line: lineAt(text, index), message });
    };
    const isMarkdown = file.endsWith(".md");
    const cited = new Set<number>();

    for (const match of text.matchAll(OUTSIDE_NOTES)) {
      report(match.index, `${match[0]}: outside the repository; cite a document in it`);
    }
    for (const match of text.matchAll(SECTION_REFERENCE)) {
      const [, name, section] = match as unknown as [string, string, string];
      cited.add(match.index + name.length + 1);
      const target = resolve(file, name, paths);
      if (target === null) report(match.index, `${name} ${SECTION}${section}: no such file`);
      else if (!hasSection(headingsOf(target), section))
        report(match.index, `${name} ${SECTION}${section}: ${target} has no section ${section}`);
      else reported.add(match.index); // a good reference: its file name is not checked again
    }
    for (const match of text.matchAll(ANY_SECTION)) {
      if (cited.has(match.index)) continue;
      const section = match[1]!;
      if (!isMarkdown)
        report(match.index, `${SECTION}${section} names no file: write which document it is in`);
      else if (!hasSection(headingsOf(file), section))
        report(match.index, `${SECTION}${section}: this file has no section ${section}`);
    }
    if (isMarkdown) {
      const prose = withoutFences(text);
      for (const match of prose.matchAll(MARKDOWN_LINK)) {
        const at = match.index + match[0].lastIndexOf("(") + 1;
        const problem = checkLink(file, match[1]!, paths, headingsOf);
        if (problem) report(at, problem);
        else reported.add(at);
      }
      for (const match of prose.matchAll(BACKTICKED_PATH)) {
        const path = match[1]!;
        if (!directories.has(path.split("/")[0]!)) continue;
        const exists = path.endsWith("/")
          ? [...paths].some((p) => p.startsWith(path))
          : paths.has(path) || [...paths].some((p) => p.startsWith(`${path}/`));
        if (!exists) report(match.index + 1, `${path}: no such file or folder`);
      }
    }
    for (const match of text.matchAll(FILE_PATH)) {
      const path = match[1]!;
      if (directories.has(path.split("/")[0]!) && !paths.has(path))
        report(match.index, `${path}: no such file`);
    }
    for (const match of text.matchAll(MARKDOWN_NAME)) {
      if (resolve(file, match[1]!, paths) === null)
        report(match.index, `${match[1]}: no such file in the repository`);
    }
  }
  // By file, then line; on one line, in the order of the rules above.
  return problems.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
}

/** `file:line: message`, one a line. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join("\n");
}

function checkLink(
  file: string,
  target: string,
  paths: ReadonlySet<string>,
  headingsOf: (path: string) => string[],
): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null; // https:, mailto:
  const [pathPart, anchor] = target.split("#", 2) as [string, string | undefined];
  const linked = pathPart === "" ? file : posix.normalize(posix.join(dirname(file), pathPart));
  const isFile = paths.has(linked);
  const isFolder = !isFile && [...paths].some((p) => p.startsWith(`${linked.replace(/\/$/, "")}/`));
  if (!isFile && !isFolder) return `link to ${target}: ${linked} is not in the repository`;
  if (anchor === undefined) return null;
  if (!linked.endsWith(".md"))
    return `link to ${target}: an anchor into a file that is not markdown`;
  if (!githubAnchors(headingsOf(linked)).has(anchor))
    return `link to ${target}: ${linked} has no heading with the anchor #${anchor}`;
  return null;
}

/** The file `name` means when `file` cites it: beside the citing file, else from the root. */
function resolve(file: string, name: string, paths: ReadonlySet<string>): string | null {
  for (const candidate of [posix.join(dirname(file), name), posix.normalize(name)]) {
    if (paths.has(candidate)) return candidate;
  }
  return null;
}

/** A heading numbers a section when its text starts with the number: `6. …`, `6.6 …`. */
function hasSection(headings: readonly string[], section: string): boolean {
  const numbered = new RegExp(`^${section.replace(/\./g, "\\.")}\\.?(\\s|$)`);
  return headings.some((heading) => numbered.test(heading));
}

/** The text of every ATX heading outside code blocks. */
function headingTexts(markdown: string): string[] {
  return [...withoutFences(markdown).matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)].map((m) => m[1]!);
}

/** The anchors GitHub gives headings: lowercased, punctuation dropped, spaces as `-`, repeats numbered. */
function githubAnchors(headings: readonly string[]): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const heading of headings) {
    const text = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .trim()
      .replace(/\s/g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** The markdown with the lines of fenced code blocks blanked, so offsets and lines keep. */
function withoutFences(markdown: string): string {
  let fence: string | null = null;
  return markdown
    .split("\n")
    .map((line) => {
      const opener = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
      if (fence === null && opener) {
        fence = opener;
        return " ".repeat(line.length);
      }
      if (fence !== null) {
        if (opener?.startsWith(fence)) fence = null;
        return " ".repeat(line.length);
      }
      return line;
    })
    .join("\n");
}

/** The folders at the repository's top level: a backticked path into one of them must exist. */
function topDirectories(paths: ReadonlySet<string>): Set<string> {
  return new Set([...paths].filter((p) => p.includes("/")).map((p) => p.split("/")[0]!));
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < index; i = text.indexOf("\n", i + 1)) line++;
  return line;
}
