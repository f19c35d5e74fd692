// ESLint: what the type checker does not catch. Unused code, import cycles, and imports that reach
// past a layer's public surface (CONTRIBUTING.md §7: `schema/` is used through `schema/index.ts`).
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
      "import-x/no-cycle": "error",
      "import-x/no-self-import": "error",
      "import-x/no-useless-path-segments": "error",
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "^(\\.\\./)+schema/",
              message: "Import from `schema/` through its public surface, schema/index.ts.",
            },
          ],
        },
      ],
    },
  },
  {
    // Inside `schema/` its modules import each other directly.
    files: ["schema/**/*.ts"],
    rules: { "no-restricted-imports": "off" },
  },
);
