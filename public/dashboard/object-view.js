// One object, live: its status, kernels, outstanding synchronize requests, page map, throughput
// and msync latency charts, and event log. The event stream drives it as things happen; GETs of
// the status, the outstanding syncs and the map, every few seconds, correct what the stream
// cannot say (or said before the page opened). Drawing is throttled: the tables at most
// RENDERS_PER_SECOND times a second, the charts once a second, the map when pages moved or on a timer.
import { followEvents, getJson, objectPath } from "./api.js";
import { Charts } from "./charts.js";
import { EventLog } from "./event-log.js";
import { formatAge, formatBytes, formatCount, formatRange, formatSyncFlags } from "./format.js";
import { ObjectState } from "./object-state.js";
import { drawMap, loadMap } from "./page-map.js";

const STATUS_POLL_MS = 5000;
const SYNCS_POLL_MS = 2000;
const MAP_POLL_MS = 10_000;
/** The map is asked for again this long after a flush, or after the status says pages moved. */
const MAP_AFTER_CHANGE_MS = 500;
/** While events come, the status is asked for again at most this often (its figures move). */
const STATUS_AFTER_EVENTS_MS = 1000;
const RENDERS_PER_SECOND = 4;
const STREAM_RETRY_MS = [1000, 2000, 5000, 10_000, 30_000];

const $ = (id) => document.getElementById(id);

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  });

/** Shows object `name` until `signal` aborts. */
export function showObject(name, signal) {
  const state = new ObjectState();
  const log = new EventLog($("log"), $("log-counts"));
  const charts = new Charts(
    $("throughput-chart"),
    $("latency-chart"),
    $("throughput-summary"),
    $("latency-summary"),
  );
  $("object-name").textContent = name;
  $("object-error").hidden = true;
  $("log").textContent = "";
  $("status").replaceChildren();
  $("kernels").tBodies[0].replaceChildren();
  $("syncs").tBodies[0].replaceChildren();
  $("segments").tBodies[0].replaceChildren();
  $("map").hidden = true;
  $("map-summary").textContent = "";

  let renderTimer = 0;
  const scheduleRender = () => {
    if (!renderTimer) renderTimer = setTimeout(render, 1000 / RENDERS_PER_SECOND);
  };
  function render() {
    renderTimer = 0;
    renderStatus(state);
    renderKernels(state);
    renderSyncs(state, Date.now());
  }

  function showError(error) {
    if (signal.aborted) return;
    $("object-error").textContent = error ? error.message : "";
    $("object-error").hidden = !error;
  }

  async function pollStatus() {
    try {
      state.setStatus(await getJson(objectPath(name), signal));
      showError(null);
      scheduleRender();
      // Pages written or flushed since the map was drawn: draw it again soon.
      const { pages, journal_pages: journal } = state.status;
      if (`${pages}/${journal}` !== mapDrawnFor) scheduleMap();
    } catch (error) {
      showError(error);
    }
  }

  async function pollSyncs() {
    const askedAt = Date.now();
    try {
      const { syncs } = await getJson(objectPath(name, "/syncs"), signal);
      state.setSyncs(syncs, askedAt);
      scheduleRender();
    } catch (error) {
      showError(error);
    }
  }

  let mapTimer = 0;
  /** The status figures (pages/journal pages) when the map was last asked for. */
  let mapDrawnFor = "";
  const scheduleMap = () => {
    if (!mapTimer) mapTimer = setTimeout(refreshMap, MAP_AFTER_CHANGE_MS);
  };
  async function refreshMap() {
    clearTimeout(mapTimer);
    mapTimer = 0;
    if (state.status) mapDrawnFor = `${state.status.pages}/${state.status.journal_pages}`;
    try {
      const map = await loadMap(name, signal);
      $("map-summary").textContent = drawMap($("map"), $("segments").tBodies[0], map);
      $("map").hidden = false;
    } catch (error) {
      if (signal.aborted) return;
      $("map-summary").textContent = `page map unavailable: ${error.message}`;
      $("map").hidden = true;
    }
  }

  let statusTimer = 0;
  function onEvent(event) {
    log.add(event);
    if (event.type !== "hello" && !statusTimer) {
      statusTimer = setTimeout(() => {
        statusTimer = 0;
        pollStatus();
      }, STATUS_AFTER_EVENTS_MS);
    }
    const effect = state.apply(event);
    if (effect.bytes) charts.addBytes(event.at, effect.bytes);
    if (effect.latencyMs !== undefined) charts.addLatency(event.at, effect.latencyMs);
    if (effect.flushed) scheduleMap();
    if (event.type === "hello") $("stream-state").textContent = "live: following the event stream";
    scheduleRender();
  }

  async function followStream() {
    for (let attempt = 0; !signal.aborted; attempt++) {
      $("stream-state").textContent = "connecting to the event stream…";
      try {
        await followEvents(
          name,
          (event) => {
            attempt = 0;
            onEvent(event);
          },
          signal,
        );
        log.note("the event stream ended; reconnecting");
      } catch (error) {
        if (signal.aborted) return;
        const delay = STREAM_RETRY_MS[Math.min(attempt, STREAM_RETRY_MS.length - 1)];
        $("stream-state").textContent =
          `event stream unavailable (${error.message}); polling, retrying in ${delay / 1000} s`;
        await sleep(delay, signal);
      }
    }
  }

  const timers = [
    setInterval(pollStatus, STATUS_POLL_MS),
    setInterval(pollSyncs, SYNCS_POLL_MS),
    setInterval(refreshMap, MAP_POLL_MS),
    // Ages of outstanding syncs grow, and the charts scroll, even when nothing happens.
    setInterval(() => {
      charts.draw();
      renderSyncs(state, Date.now());
    }, 1000),
  ];
  signal.addEventListener("abort", () => {
    timers.forEach(clearInterval);
    clearTimeout(renderTimer);
    clearTimeout(mapTimer);
    clearTimeout(statusTimer);
    log.destroy();
    charts.destroy();
  });

  charts.draw();
  pollStatus();
  pollSyncs();
  refreshMap();
  followStream();
}

function renderStatus({ status, syncs }) {
  if (!status) return;
  const rows = [
    ["page size", status.page_size === null ? "not fixed yet" : formatBytes(status.page_size)],
    ["mode", status.coherent ? "coherent" : "plain"],
    ["size", formatBytes(status.size)],
    ["pages", formatCount(status.pages)],
    ["bytes", formatBytes(status.bytes)],
    ["journal pages", formatCount(status.journal_pages)],
    ["next seqno", formatCount(status.seqno)],
    ["kernels", formatCount(status.kernels.length)],
    ["outstanding syncs", formatCount(syncs.size)],
  ];
  $("status").replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.field = term;
      return [dt, dd];
    }),
  );
}

function renderKernels({ kernels }) {
  const rows = [...kernels.values()]
    .sort((a, b) => a.kernel.localeCompare(b.kernel))
    .map((kernel) => {
      const row = document.createElement("tr");
      row.dataset.kernel = kernel.kernel;
      row.dataset.state = kernel.connected ? "connected" : "disconnected";
      const cells = [
        [kernel.kernel, ""],
        [row.dataset.state, row.dataset.state],
        [String(kernel.last_id), "num"],
        [kernel.stale ? "stale" : "no", kernel.stale ? "stale" : ""],
      ];
      for (const [text, className] of cells) {
        const cell = row.insertCell();
        cell.textContent = text;
        cell.className = className;
      }
      return row;
    });
  $("kernels").tBodies[0].replaceChildren(...rows);
}

function renderSyncs({ syncs }, now) {
  const rows = [...syncs.values()]
    .sort((a, b) => a.since - b.since)
    .map((sync) => {
      const row = document.createElement("tr");
      row.dataset.sync = `${sync.kernel}#${sync.id}`;
      const cells = [
        sync.kernel,
        String(sync.id),
        formatRange(sync.offset, sync.length),
        formatSyncFlags(sync.sync_flags),
        formatAge(now - sync.since),
      ];
      cells.forEach((text, index) => {
        const cell = row.insertCell();
        cell.textContent = text;
        if (index === 1 || index === 4) cell.className = "num";
      });
      return row;
    });
  $("syncs").tBodies[0].replaceChildren(...rows);
}
