/**
 * `edgepager/sqlite`: SQLite databases whose files are memory objects (docs/sqlite.md). Node 22+
 * and browsers.
 */
export {
  openDatabase,
  Database,
  type DatabaseOptions,
  type PreparedStatement,
  type ResultSet,
} from "./database";
export { WRITER_KERNEL, journalObjectOf } from "./database-files";
