// What the dashboard knows of one object, kept up to date from two sources: the event stream
// (each event applied in seqno order, as it happens) and the GET answers polled now and then (the
// truth the events may have missed: the page opened late, or it lost events for being slow).
// No drawing here: object-view.js draws from this.

/** The key of one synchronize request: its kernel and its id (an id is per kernel). */
const syncKey = (kernel, id) => `${kernel}#${id}`;

/** How many synchronize messages (or early completions) wait for their other event. */
const MAX_PENDING_LATENCIES = 10_000;

/** Sets `key` in `map`, dropping the oldest entry past MAX_PENDING_LATENCIES. */
function remember(map, key, value) {
  map.set(key, value);
  // Halves whose other event the page never saw (events lost) must not grow it for ever.
  if (map.size > MAX_PENDING_LATENCIES) map.delete(map.keys().next().value);
}

export class ObjectState {
  constructor() {
    /** The last status (GET /v1/objects/{name}, or the stream's hello), patched by events. */
    this.status = null;
    /** kernel name → {kernel, connected, last_id, stale} */
    this.kernels = new Map();
    /** "kernel#id" → {kernel, id, offset, length, sync_flags, since (ms)}: outstanding syncs. */
    this.syncs = new Map();
    /** "kernel#id" → when its synchronize reached the object (ms), for its latency. */
    this.sentAt = new Map();
    /**
     * "kernel#id" → when a completion came before its synchronize's own message event (ms): a
     * request that completes at once may be told in that order; its message then finds it here.
     */
    this.completedEarly = new Map();
  }

  /** The status answer replaces what events said of the figures and kernels. */
  setStatus(status) {
    this.status = { ...status };
    const kernels = new Map();
    for (const kernel of status.kernels) {
      const known = this.kernels.get(kernel.kernel);
      // `stale` is in the status since issue 15; before it, keep what departure events said.
      kernels.set(kernel.kernel, { stale: known?.stale ?? false, ...kernel });
    }
    this.kernels = kernels;
  }

  /**
   * The list of GET /v1/objects/{name}/syncs, asked for at `askedAt` (ms): it replaces the
   * outstanding requests, but keeps those that events added since it was asked for.
   */
  setSyncs(list, askedAt) {
    const syncs = new Map();
    for (const sync of list) {
      const key = syncKey(sync.kernel, sync.id);
      const since = Date.parse(sync.since);
      syncs.set(key, { ...sync, since });
      if (!this.sentAt.has(key)) this.sentAt.set(key, since);
    }
    for (const [key, sync] of this.syncs) {
      if (!syncs.has(key) && sync.since >= askedAt) syncs.set(key, sync);
    }
    this.syncs = syncs;
  }

  /**
   * Applies one event; returns what it means for the charts and the map:
   * `{bytes}` returned, `{latencyMs}` of a completed synchronize, `{flushed: true}`, or `{}`.
   */
  apply(event) {
    switch (event.type) {
      case "hello":
        this.setStatus(event.status);
        return {};
      case "message":
        return this.applyMessage(event);
      case "completion": {
        const key = syncKey(event.kernel, event.id);
        const sentAt = this.sentAt.get(key);
        this.sentAt.delete(key);
        this.syncs.delete(key);
        if (this.status) this.status.syncs = this.syncs.size;
        if (sentAt !== undefined) return { latencyMs: event.at - sentAt };
        remember(this.completedEarly, key, event.at);
        return {};
      }
      case "kernel": {
        const kernel = this.kernel(event.kernel);
        kernel.connected = event.connected;
        // An init clears the stale mark (docs/protocol.md §6.6).
        if (event.connected) kernel.stale = false;
        return {};
      }
      case "departure":
        this.kernel(event.kernel).stale = event.stale;
        return {};
      case "flush":
        return { flushed: true };
      default:
        return {};
    }
  }

  applyMessage(event) {
    if (this.status) this.status.seqno = Math.max(this.status.seqno, event.seqno + 1);
    const kernel = this.kernels.get(event.kernel);
    if (kernel && typeof event.id === "number") kernel.last_id = Math.max(kernel.last_id, event.id);
    if (event.outcome !== "ok") return {};
    if (event.message === "memory_object_data_return") return { bytes: event.length };
    if (event.message === "memory_object_synchronize") {
      const key = syncKey(event.kernel, event.id);
      const completedAt = this.completedEarly.get(key);
      if (completedAt !== undefined) {
        this.completedEarly.delete(key);
        return { latencyMs: Math.max(0, completedAt - event.at) };
      }
      this.syncs.set(key, {
        kernel: event.kernel,
        id: event.id,
        seqno: event.seqno,
        offset: event.offset,
        length: event.length,
        sync_flags: null, // not in the event; the next poll of /syncs fills it in
        since: event.at,
      });
      remember(this.sentAt, key, event.at);
    }
    return {};
  }

  kernel(name) {
    let kernel = this.kernels.get(name);
    if (!kernel) {
      kernel = { kernel: name, connected: false, last_id: 0, stale: false };
      this.kernels.set(name, kernel);
    }
    return kernel;
  }
}
