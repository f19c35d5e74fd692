/** Small named values of the object (seqno counter, page size, name) in the `meta` table. */

export class Meta {
  constructor(private readonly sql: SqlStorage) {}

  get<T extends string | number>(key: string): T | null {
    const row = this.sql
      .exec<{ value: T }>(`SELECT value FROM meta WHERE key = ?`, key)
      .toArray()[0];
    return row ? row.value : null;
  }

  set(key: string, value: string | number): void {
    this.sql.exec(
      `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      key,
      value,
    );
  }

  /** Adds `n` to a counter (absent: 0) in one statement, without reading it first. */
  add(key: string, n: number): void {
    this.sql.exec(
      `INSERT INTO meta (key, value) VALUES (?, ?)
       ON CONFLICT (key) DO UPDATE SET value = value + excluded.value`,
      key,
      n,
    );
  }

  delete(key: string): void {
    this.sql.exec(`DELETE FROM meta WHERE key = ?`, key);
  }

  /** Returns the counter's current value and stores the next one. */
  take(key: string, first: number): number {
    const value = this.get<number>(key) ?? first;
    this.set(key, value + 1);
    return value;
  }
}
