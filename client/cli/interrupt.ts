/**
 * Ctrl-C as a value: a command races its work against `interrupted()` and ends through its own
 * `finally` (terminate the kernel, clear the progress bar) instead of dying mid-write.
 */

/** Resolves on the first SIGINT or SIGTERM; `dispose` restores the default handling. */
export function interrupted(): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let handler: (signal: NodeJS.Signals) => void = () => {};
  const signal = new Promise<NodeJS.Signals>((resolve) => (handler = resolve));
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
  return {
    signal,
    dispose() {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}
