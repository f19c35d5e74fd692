/**
 * bench/results.svg: one bar per workload, its figure (mostly a ratio to the baseline measured in
 * the same run) against its target, each row on its own scale. Hand-written SVG, no dependency.
 */
import type { Row } from "./rows";

interface Results {
  mode: string;
  date: string;
  machine: { cpu: string; cores: number; node: string };
  rows: Row[];
}

const WIDTH = 860;
const LABEL = 340;
const BAR = 390;
const ROW = 46;
const TOP = 58;

/** Cuts `text` to `max` characters, marking the cut. */
function fit(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function renderSvg(results: Results): string {
  const height = TOP + results.rows.length * ROW + 40;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
      `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">edgepager bench: figures against ` +
      `targets (${escape(results.mode)} run)</text>`,
    `<text x="12" y="40" fill="#555">${escape(
      `${results.machine.cpu}, ${results.machine.cores} cores, Node ${results.machine.node}, ` +
        `${results.date.slice(0, 10)}. Bar: the figure; dashed line: the target; each row has ` +
        `its own scale.`,
    )}</text>`,
  ];
  results.rows.forEach((row, i) => {
    const y = TOP + i * ROW;
    const scale = Math.max(row.figure, row.target?.value ?? 0) * 1.2 || 1;
    const width = Math.max(1, (row.figure / scale) * BAR);
    const colour = row.met === null ? "#8a8f98" : row.met ? "#2e8b57" : "#c0392b";
    parts.push(
      `<text x="12" y="${y + 14}" font-weight="bold">${escape(row.id)}</text>`,
      `<text x="48" y="${y + 14}">${escape(fit(row.title, 38))}</text>`,
      `<text x="48" y="${y + 30}" fill="#555" font-size="11">${escape(fit(row.figureLabel, 44))}</text>`,
      `<rect x="${LABEL}" y="${y + 4}" width="${width.toFixed(1)}" height="22" fill="${colour}"/>`,
      `<text x="${(LABEL + width + 6).toFixed(1)}" y="${y + 20}">${row.figure.toFixed(2)}` +
        `${row.met === null ? "" : row.met ? " ✓" : " ✗"}</text>`,
    );
    if (row.target) {
      const x = LABEL + (row.target.value / scale) * BAR;
      parts.push(
        `<line x1="${x.toFixed(1)}" y1="${y}" x2="${x.toFixed(1)}" y2="${y + 30}" ` +
          `stroke="#222" stroke-width="1.5" stroke-dasharray="4 3"/>`,
        `<text x="${(x + 4).toFixed(1)}" y="${y + 40}" fill="#222" font-size="11">` +
          `${row.target.op === "<=" ? "≤" : "≥"} ${row.target.value}</text>`,
      );
    }
  });
  parts.push(
    `<text x="12" y="${height - 12}" fill="#555" font-size="11">green: target met; red: not ` +
      `met; grey: reported only. Data: bench/results.json.</text>`,
    `</svg>`,
  );
  return `${parts.join("\n")}\n`;
}
