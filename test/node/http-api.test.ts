// The HTTP API's one definition (schema/http-api.ts) and what is derived from it outside the
// Worker: its OpenAPI document passes a maintained validator, and README's HTTP table is the
// definition's (`npm run docs:http` rewrites it).
import { validate } from "@readme/openapi-parser";
import { join } from "node:path";
import { format, resolveConfig } from "prettier";
import { describe, expect, it } from "vitest";
import { HTTP_PATHS, isPathOf, objectPath } from "../../schema";
import { OPERATIONS, httpTable, openApiDocument, spelled } from "../../schema/http-api";
import { expectGeneratedSection } from "./generated-section";

const ROOT = join(import.meta.dirname, "..", "..");

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1", async () => {
    // The validator dereferences in place: give it a copy.
    const result = await validate(structuredClone(openApiDocument()) as never);
    expect(result.valid ? [] : result.errors).toEqual([]);
    expect(result.specification).toBe("OpenAPI");
  });

  it("has every operation, once, under its id", () => {
    const document = openApiDocument();
    const ids = Object.values(document.paths ?? {}).flatMap((item) =>
      Object.values(item as Record<string, { operationId?: string }>).map((op) => op.operationId),
    );
    expect(ids.sort()).toEqual(Object.keys(OPERATIONS).sort());
  });
});

describe("README's HTTP table", () => {
  it("is the definition's", async () => {
    // `npm run docs:http` (UPDATE_HTTP_TABLE=1) rewrites it.
    const path = join(ROOT, "README.md");
    const options = (await resolveConfig(path)) ?? {};
    const expected = `\n${await format(httpTable(), { ...options, parser: "markdown" })}\n`;
    expectGeneratedSection(
      {
        path,
        begin: "<!-- http-table:start -->\n",
        end: "<!-- http-table:end -->",
        updateVariable: "UPDATE_HTTP_TABLE",
      },
      expected,
    );
  });

  it("spells each route with its query: `[&x=]` when optional", () => {
    expect(spelled(OPERATIONS.readPages.route)).toBe(
      "GET /v1/objects/{name}/pages?offset=&length=",
    );
    expect(spelled(OPERATIONS.writePages.route)).toBe(
      "PUT /v1/objects/{name}/pages?offset=[&page_size=][&coherent=]",
    );
    expect(spelled(OPERATIONS.control.route)).toBe("GET /v1/objects/{name}/control?kernel=");
  });
});

describe("the paths the client shares (schema/http-paths.ts)", () => {
  it("fills in a name, encoded, and a query, leaving out what is undefined", () => {
    expect(objectPath(HTTP_PATHS.pages, "a b", { offset: 0, length: 4096 })).toBe(
      "v1/objects/a%20b/pages?offset=0&length=4096",
    );
    expect(objectPath(HTTP_PATHS.pages, "db", { offset: 8192, page_size: undefined })).toBe(
      "v1/objects/db/pages?offset=8192",
    );
    expect(objectPath(HTTP_PATHS.object, "db")).toBe("v1/objects/db");
  });

  it("tells a path of some object from others", () => {
    expect(isPathOf(HTTP_PATHS.control, "/v1/objects/db/control")).toBe(true);
    expect(isPathOf(HTTP_PATHS.control, "/v1/objects//control")).toBe(false);
    expect(isPathOf(HTTP_PATHS.control, "/v1/objects/a/b/control")).toBe(false);
    expect(isPathOf(HTTP_PATHS.control, "/v1/objects/db/syncs")).toBe(false);
  });

  it("are the paths of the definition's routes", () => {
    const routePaths = new Set(Object.values(OPERATIONS).map(({ route }) => route.path));
    for (const path of Object.values(HTTP_PATHS)) expect(routePaths.has(path), path).toBe(true);
  });
});
