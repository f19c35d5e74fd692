// The object list: `GET /v1/objects?prefix=&cursor=&limit=`, one page at a time, searched by name
// prefix, refreshed every few seconds while shown. A token sees only the names it covers.
import { getJson } from "./api.js";
import { formatBytes, formatCount, formatDate } from "./format.js";

const DEFAULT_LIMIT = 50;
const REFRESH_MS = 5000;
const SEARCH_DELAY_MS = 250;

const $ = (id) => document.getElementById(id);

/**
 * Shows the list until `signal` aborts: names starting with `prefix`, `limit` a page (1 to
 * 1000, the API's bounds). The search is kept in the address, so it can be linked to.
 */
export function showList(signal, { prefix = "", limit = DEFAULT_LIMIT } = {}) {
  const pageLength = String(Math.min(1000, Math.max(1, limit)));
  $("prefix").value = prefix;
  // The cursor that starts each page seen so far: null for the first.
  let cursors = [null];
  let next = null;
  let loading = null;

  async function load() {
    loading?.abort();
    const controller = new AbortController();
    loading = controller;
    const query = new URLSearchParams({ limit: pageLength });
    const prefix = $("prefix").value.trim();
    if (prefix) query.set("prefix", prefix);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await getJson(
        `/v1/objects?${query}`,
        AbortSignal.any([signal, controller.signal]),
      );
      next = page.cursor;
      render(page.objects);
      $("list-error").hidden = true;
    } catch (error) {
      if (signal.aborted || controller.signal.aborted) return;
      $("list-error").textContent = `cannot list objects: ${error.message}`;
      $("list-error").hidden = false;
    }
  }

  function render(objects) {
    const rows = objects.map((object) => {
      const row = document.createElement("tr");
      row.dataset.object = object.object;
      const link = document.createElement("a");
      link.href = `#/objects/${encodeURIComponent(object.object)}`;
      link.textContent = object.object;
      const cells = [
        link,
        object.page_size === null ? "not fixed" : String(object.page_size),
        object.coherent ? "coherent" : "plain",
        formatCount(object.pages),
        formatBytes(object.bytes),
        formatDate(object.created),
        formatDate(object.last_activity),
      ];
      cells.forEach((content, index) => {
        const cell = row.insertCell();
        if (index === 3 || index === 4) cell.className = "num";
        cell.append(content);
      });
      return row;
    });
    $("objects").tBodies[0].replaceChildren(...rows);
    $("list-page").textContent = objects.length
      ? `page ${cursors.length}`
      : cursors.length > 1
        ? `page ${cursors.length}: empty`
        : "no objects";
    $("list-previous").disabled = cursors.length === 1;
    $("list-next").disabled = next === null;
  }

  const restart = () => {
    cursors = [null];
    const search = new URLSearchParams();
    if ($("prefix").value.trim()) search.set("prefix", $("prefix").value.trim());
    if (limit !== DEFAULT_LIMIT) search.set("limit", pageLength);
    // replaceState fires no hashchange: the list goes on as it is.
    history.replaceState(null, "", search.size ? `#/?${search}` : "#/");
    load();
  };
  let searchTimer = 0;
  const on = (id, type, listener) => $(id).addEventListener(type, listener, { signal });
  on("prefix", "input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(restart, SEARCH_DELAY_MS);
  });
  on("list-refresh", "click", load);
  on("list-next", "click", () => {
    if (next === null) return;
    cursors.push(next);
    load();
  });
  on("list-previous", "click", () => {
    if (cursors.length > 1) cursors.pop();
    load();
  });
  on("list-form", "submit", (event) => {
    event.preventDefault();
    const name = $("open-name").value.trim();
    if (name) location.hash = `#/objects/${encodeURIComponent(name)}`;
  });

  const timer = setInterval(load, REFRESH_MS);
  signal.addEventListener("abort", () => {
    clearInterval(timer);
    clearTimeout(searchTimer);
    loading?.abort();
  });
  load();
}
