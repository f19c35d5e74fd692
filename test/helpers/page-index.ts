/**
 * The page index as tests read it: each page with its segment's R2 key (the object's tables name
 * segments by integer id; the key lives once, in `segments`).
 *
 * @example sql.exec(`SELECT page, segment FROM ${PAGE_INDEX} WHERE page = ?`, 3)
 */
export const PAGE_INDEX = `(SELECT pages.page AS page, segments.key AS segment, pages.slot AS slot,
    pages.seqno AS seqno FROM pages JOIN segments ON segments.id = pages.segment) AS page_index`;
