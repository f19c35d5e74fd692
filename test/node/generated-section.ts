/**
 * A part of a document generated from the code (README's HTTP table, docs/cli.md's reference),
 * between `<!-- NAME:begin -->` / `<!-- NAME:end -->` style markers. A test compares it with what
 * the code generates now, or rewrites it when the named environment variable is `1`, so the
 * documents cannot drift from what they describe.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { expect } from "vitest";

export interface GeneratedSection {
  /** The document, an absolute path. */
  path: string;
  begin: string;
  end: string;
  /** Set to `1` to rewrite the section instead of checking it. */
  updateVariable: string;
}

/** Checks that the section holds exactly `expected` (or rewrites it; see above). */
export function expectGeneratedSection(section: GeneratedSection, expected: string): void {
  const document = readFileSync(section.path, "utf8");
  const from = document.indexOf(section.begin) + section.begin.length;
  const to = document.indexOf(section.end, from);
  expect(
    from >= section.begin.length && to >= from,
    `${section.path} lacks the markers ${section.begin.trim()} and ${section.end.trim()}`,
  ).toBe(true);
  if (process.env[section.updateVariable] === "1") {
    writeFileSync(section.path, document.slice(0, from) + expected + document.slice(to));
    return;
  }
  expect(document.slice(from, to), `run with ${section.updateVariable}=1 to regenerate`).toBe(
    expected,
  );
}
