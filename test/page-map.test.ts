/**
 * The page map (`GET /v1/objects/{name}/map`, durable/page-map.ts): where an object's pages are,
 * in at most `cells` runs: in the journal, only in R2 (with the segment holding most of them),
 * never written. Its answer stays small however large the object; bad `cells` gets 400.
 */
import { describe, expect, it } from "vitest";
import { VM_SYNC_SYNCHRONOUS } from "../schema";
import { call, putPages, synchronize } from "./helpers/http";
import { pageOf } from "./helpers/kernel";

type PageMap = {
  page_size: number;
  end_page: number;
  cells: { first: number; end: number; journal: number; r2: number; segment: string | null }[];
  segments: { key: string; pages: number; live: number }[];
};

async function mapOf(object: string, cells?: number): Promise<PageMap> {
  const response = await call(`/v1/objects/${object}/map${cells ? `?cells=${cells}` : ""}`);
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as PageMap;
}

describe("the page map", () => {
  it("tells journal, R2 and never-written pages apart, cell by cell", async () => {
    const object = "map-kinds";
    // Pages 0-3 reach R2; page 6 stays in the journal; 4, 5 and 7 are never written.
    expect((await putPages(object, 0, new Uint8Array(4 * 4096).fill(1))).status).toBe(200);
    expect((await synchronize(object, 0, 4 * 4096, VM_SYNC_SYNCHRONOUS)).status).toBe(200);
    expect((await putPages(object, 6 * 4096, pageOf(2))).status).toBe(200);
    // A newer version of page 1 in the journal counts there, not in R2.
    expect((await putPages(object, 4096, pageOf(3))).status).toBe(200);

    const map = await mapOf(object, 4);
    expect(map.end_page).toBe(7);
    expect(map.cells.map(({ first, end, journal, r2 }) => ({ first, end, journal, r2 }))).toEqual([
      { first: 0, end: 2, journal: 1, r2: 1 },
      { first: 2, end: 4, journal: 0, r2: 2 },
      { first: 4, end: 6, journal: 0, r2: 0 },
      { first: 6, end: 7, journal: 1, r2: 0 },
    ]);
    expect(map.segments).toHaveLength(1);
    const [segment] = map.segments;
    expect(segment).toMatchObject({ pages: 4, live: 4 });
    expect(map.cells[0]!.segment).toBe(segment!.key);
    expect(map.cells[3]!.segment).toBeNull();
  });

  it("answers in at most `cells` runs for an object of 20,480 pages", async () => {
    const object = "map-large";
    const pageSize = 512;
    const pages = 20 * 1024;
    const bytes = new Uint8Array(pages * pageSize).fill(5);
    expect((await putPages(object, 0, bytes, `&page_size=${pageSize}`)).status).toBe(200);
    const map = await mapOf(object, 100);
    expect(map.end_page).toBe(pages);
    expect(map.cells.length).toBeLessThanOrEqual(100);
    expect(map.cells.reduce((sum, cell) => sum + cell.journal + cell.r2, 0)).toBe(pages);
    // The default: 256 cells.
    expect((await mapOf(object)).cells).toHaveLength(256);
  });

  it("of a fresh object is empty; bad cells get 400 naming the field", async () => {
    expect(await mapOf("map-fresh")).toEqual({
      page_size: 4096,
      end_page: 0,
      cells: [],
      segments: [],
    });
    for (const cells of ["0", "4097", "many"]) {
      const response = await call(`/v1/objects/map-fresh/map?cells=${cells}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(
        /^cells must be an integer from 1 to 4096/,
      );
    }
  });
});
