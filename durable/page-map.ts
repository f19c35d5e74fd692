/**
 * The page map of the dashboard (`GET /v1/objects/{name}/map`, docs/dashboard.md): where an
 * object's pages are, aggregated into at most `cells` runs of equal length so that an object of
 * 100,000 pages costs the viewer a few hundred numbers. For each cell: pages in the journal (not
 * yet in R2), pages only in R2, and the segment holding most of those; the rest were never
 * written (or were dropped by a shrink). And each segment's pages and live share.
 *
 * Read-only, a few aggregate queries over the journal and the page index.
 */

interface MapCell {
  first: number;
  end: number;
  journal: number;
  r2: number;
  /** The R2 key holding most of the cell's R2 pages, or null when none is in R2. */
  segment: string | null;
}

export interface PageMap {
  page_size: number;
  /** One past the highest stored page: the cells cover [0, end_page). */
  end_page: number;
  cells: MapCell[];
  segments: { key: string; pages: number; live: number }[];
}

export function pageMap(sql: SqlStorage, pageSize: number, cells: number): PageMap {
  const { past } = sql
    .exec<{ past: number | null }>(
      `SELECT max(page) + 1 AS past FROM (SELECT max(page) AS page FROM journal
       UNION ALL SELECT max(page) FROM pages)`,
    )
    .one();
  const endPage = past ?? 0;
  const width = Math.max(1, Math.ceil(endPage / cells));
  const count = Math.ceil(endPage / width);
  const map: MapCell[] = Array.from({ length: count }, (_, i) => ({
    first: i * width,
    end: Math.min(endPage, (i + 1) * width),
    journal: 0,
    r2: 0,
    segment: null,
  }));
  // The width is bound as a float: cast, or the division would not be whole.
  for (const { cell, n } of sql.exec<{ cell: number; n: number }>(
    `SELECT page / CAST(?1 AS INTEGER) AS cell, count(*) AS n FROM journal GROUP BY cell`,
    width,
  )) {
    map[cell]!.journal = n;
  }
  // Pages whose newest version is in R2 (a newer one in the journal counts there), by segment.
  const best = new Map<number, number>();
  for (const { cell, key, n } of sql.exec<{ cell: number; key: string; n: number }>(
    `SELECT p.page / CAST(?1 AS INTEGER) AS cell, s.key AS key, count(*) AS n
     FROM pages AS p JOIN segments AS s ON s.id = p.segment
     WHERE NOT EXISTS (SELECT 1 FROM journal AS j WHERE j.page = p.page)
     GROUP BY cell, p.segment`,
    width,
  )) {
    const target = map[cell]!;
    target.r2 += n;
    if (n > (best.get(cell) ?? 0)) {
      best.set(cell, n);
      target.segment = key;
    }
  }
  const segments = sql
    .exec<{ key: string; pages: number; live: number }>(
      `SELECT key, pages, live FROM segments ORDER BY id`,
    )
    .toArray();
  return { page_size: pageSize, end_page: endPage, cells: map, segments };
}
