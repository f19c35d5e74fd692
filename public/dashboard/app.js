// The dashboard's entry: the token field, and which view the address shows. Views are chosen by
// the fragment (`#/` the object list, `#/objects/NAME` one object), so every view is the one
// static page and no path under /dashboard/ needs the Worker. Leaving a view aborts its signal,
// which stops its timers and requests.
import { saveToken, savedToken } from "./api.js";
import { showList } from "./list-view.js";
import { showObject } from "./object-view.js";

const $ = (id) => document.getElementById(id);

function showTokenState() {
  $("token-state").textContent = savedToken()
    ? "a token is kept in this browser"
    : "no token: fine while authentication is off";
}

let current = null;

function route() {
  current?.abort();
  current = new AbortController();
  const match = /^#\/objects\/(.+)$/.exec(location.hash);
  $("list-view").hidden = Boolean(match);
  $("object-view").hidden = !match;
  if (match) {
    const name = decodeURIComponent(match[1]);
    document.title = `${name}: edgepager dashboard`;
    showObject(name, current.signal);
  } else {
    document.title = "edgepager dashboard";
    // `#/?prefix=P&limit=N`: a search that can be linked to, and the page length.
    const query = new URLSearchParams(location.hash.split("?")[1] ?? "");
    showList(current.signal, {
      prefix: query.get("prefix") ?? "",
      limit: Number(query.get("limit")) || undefined,
    });
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  saveToken($("token").value.trim());
  $("token").value = "";
  showTokenState();
  route();
});
$("token-clear").addEventListener("click", () => {
  saveToken("");
  showTokenState();
  route();
});
window.addEventListener("hashchange", route);
showTokenState();
route();
