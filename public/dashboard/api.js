// The dashboard's one door to the HTTP API of the Worker that served it (same origin, so no CORS).
// Every request carries the pasted token as `Authorization: Bearer`; with none (local
// development, authentication off) it carries nothing. The event stream is read with fetch() and
// a stream reader rather than EventSource, so it carries the same header and the token never
// lands in a URL (docs/dashboard.md).

const TOKEN_KEY = "edgepager.token";

/** The token kept in this browser, or "" for none. */
export function savedToken() {
  return localStorage.getItem(TOKEN_KEY) ?? "";
}

/** Keeps `token` for later visits; "" forgets it. */
export function saveToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

function authorization() {
  const token = savedToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** An error answer of the API: `{"error": {code, kern_return, message}}` and its HTTP status. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(`${message} (HTTP ${status}, ${code})`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

async function errorOf(response) {
  let code = "http_error";
  let message = response.statusText;
  try {
    const { error } = await response.json();
    code = error.code;
    message = error.message;
  } catch {
    // Not the API's JSON (a proxy's page, an empty body): the status line says enough.
  }
  return new ApiError(response.status, code, message);
}

/** The path of an object's resource: `/v1/objects/{name}{rest}`. */
export function objectPath(name, rest = "") {
  return `/v1/objects/${encodeURIComponent(name)}${rest}`;
}

/** GETs `path` and returns its JSON body, or throws an ApiError. */
export async function getJson(path, signal) {
  const response = await fetch(path, { headers: authorization(), signal });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/**
 * Follows an object's event stream (server-sent events, docs/dashboard.md) and calls `onEvent`
 * with each event's JSON, in order. Resolves when the server ends the stream; rejects with an
 * ApiError if it refuses it, or with the abort reason once `signal` aborts.
 */
export async function followEvents(name, onEvent, signal) {
  const response = await fetch(objectPath(name, "/events"), {
    headers: { ...authorization(), accept: "text/event-stream" },
    signal,
    cache: "no-store",
  });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    // One event per blank-line-terminated block; `data:` lines carry it, `:` lines are comments.
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}
