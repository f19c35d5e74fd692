// ESLint: what the type checker does not catch. Unused code, import cycles, and imports that reach
// past a layer's public surface (CONTRIBUTING.md §7).
import { createNodeResolver, importX } from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "node_modules/",
      "dist/",
      ".wrangler/",
      "worker-configuration.d.ts",
      "bench/results.*",
      "public/dashboard/vendor/",
      "test-artifacts/",
    ],
  },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    plugins: { "import-x": importX },
    settings: {
      "import-x/extensions": [".ts", ".js"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/resolver-next": [createNodeResolver({ extensions: [".ts", ".js"] })],
    },
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
      ],
      // The code states non-null facts the checker cannot see (`array[i]!` after a bounds check).
      "@typescript-eslint/no-non-null-assertion": "off",
      "import-x/no-cycle": ["error", { ignoreExternal: true }],
      "import-x/no-self-import": "error",
      "import-x/no-useless-path-segments": "error",
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              // Two public surfaces: schema/index.ts (the protocol, no dependencies) and
              // schema/http-api.ts (the HTTP API's zod definition, kept out of the client bundle).
              regex: "^(\\.\\./)+schema/(?!http-api$)",
              message:
                "Import from `schema/` through schema/index.ts (or schema/http-api.ts for the HTTP API's definition).",
            },
          ],
        },
      ],
    },
  },
  {
    // Tests and benchmarks read JSON of any shape off the wire (frames, DevTools answers, status
    // bodies) and check it field by field; a type for every shape would restate the assertions.
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    // Inside `schema/` its modules import each other directly.
    files: ["schema/**/*.ts"],
    rules: { "no-restricted-imports": "off" },
  },
);
