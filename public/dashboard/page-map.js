// The page map: where each page of an object lives, from `GET /v1/objects/{name}/map?cells=N`.
// The server aggregates the pages into at most N cells (so 100,000 pages cost the page what
// 1,024 do); each cell is drawn as a small square filled from the bottom by its shares: pages in
// R2 (in the colour of the segment holding most of them), pages in the journal (amber), and
// never-written pages (the pale rest). Below it, each segment with its live share.
import { getJson, objectPath } from "./api.js";
import { formatCount } from "./format.js";

const MAP_CELLS = 1024;
const COLUMNS = 64;
const JOURNAL_COLOUR = "#e3a008";
const EMPTY_COLOUR = "#eef1f4";
const UNKNOWN_SEGMENT_COLOUR = "#6e7781";
const MIN_PIXELS = 3;

/** A distinct colour for the segment at `index` of the map's list (golden-angle hues). */
function segmentColour(index) {
  return `hsl(${Math.round((index * 137.508) % 360)} 60% 45%)`;
}

/** Fetches the map of `name` with at most MAP_CELLS cells. */
export function loadMap(name, signal) {
  return getJson(objectPath(name, `/map?cells=${MAP_CELLS}`), signal);
}

/** Draws `map` on `canvas`, fills the segment table `tbody`, and returns a one-line summary. */
export function drawMap(canvas, tbody, map) {
  const colours = new Map(
    map.segments.map((segment, index) => [segment.key, segmentColour(index)]),
  );
  const rows = Math.max(1, Math.ceil(map.cells.length / COLUMNS));
  const size = Math.floor(canvas.width / COLUMNS);
  canvas.height = rows * size;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  let journal = 0;
  let r2 = 0;
  map.cells.forEach((cell, index) => {
    const x = (index % COLUMNS) * size;
    const y = Math.floor(index / COLUMNS) * size;
    const pages = cell.end - cell.first;
    const inner = size - 1; // a one-pixel gap between cells
    context.fillStyle = EMPTY_COLOUR;
    context.fillRect(x, y, inner, inner);
    const r2Height = pages ? Math.round((inner * cell.r2) / pages) : 0;
    const journalHeight = pages ? Math.round((inner * cell.journal) / pages) : 0;
    // A cell with any page in it shows at least a few pixels of it, however sparse.
    const r2Shown = cell.r2 > 0 ? Math.max(MIN_PIXELS, r2Height) : 0;
    const journalShown = cell.journal > 0 ? Math.max(MIN_PIXELS, journalHeight) : 0;
    context.fillStyle = colours.get(cell.segment) ?? UNKNOWN_SEGMENT_COLOUR;
    context.fillRect(x, y + inner - r2Shown, inner, r2Shown);
    context.fillStyle = JOURNAL_COLOUR;
    context.fillRect(x, y + inner - r2Shown - journalShown, inner, journalShown);
    journal += cell.journal;
    r2 += cell.r2;
  });

  tbody.replaceChildren(
    ...map.segments.map((segment) => {
      const row = document.createElement("tr");
      row.dataset.segment = segment.key;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colours.get(segment.key);
      const share = segment.pages ? (100 * segment.live) / segment.pages : 0;
      [swatch, segment.key, formatCount(segment.pages), formatCount(segment.live)]
        .concat(`${share.toFixed(1)} %`)
        .forEach((content, index) => {
          const cell = row.insertCell();
          if (index >= 2) cell.className = "num";
          cell.append(content);
        });
      return row;
    }),
  );

  const never = map.end_page - journal - r2;
  const perCell = map.cells.length ? Math.ceil(map.end_page / map.cells.length) : 0;
  return map.end_page === 0
    ? "no pages yet"
    : `${formatCount(map.end_page)} pages in ${formatCount(map.cells.length)} cells ` +
        `(up to ${formatCount(perCell)} pages each): ${formatCount(r2)} in R2, ` +
        `${formatCount(journal)} in the journal, ${formatCount(never)} never written`;
}
