/**
 * vitest setupFile of the "workerd" project: every test file runs with the production SQL limits
 * (test/helpers/production-sql-guard.ts) on every Durable Object's SQLite, including objects
 * created later and instances after an eviction or restart.
 */
import { installProductionSqlGuard } from "../helpers/production-sql-guard";

await installProductionSqlGuard();
