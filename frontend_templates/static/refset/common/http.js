// The one way the static modules talk to the server: same-origin credentials,
// Django's CSRF header, JSON in and out, and an HttpError for any answer that is
// not 2xx (its parsed body kept, its message the server's `detail` where given).
// `request()` is the raw form for bodies that are not JSON (the pixel stream).

/** Django's CSRF token from its cookie ("" when there is none). */
export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class HttpError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function readJSON(response) {
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function send(method, url, { body, accept = "application/json", keepalive = false, signal } = {}) {
  const headers = { Accept: accept, "X-CSRFToken": csrfToken() };
  return fetch(url, {
    method,
    credentials: "same-origin",
    keepalive,
    signal,
    headers: body === undefined ? { ...headers } : { ...headers, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/**
 * A call whose answer is not JSON (read it from the Response): resolves to the
 * Response when it is 2xx, throws HttpError otherwise. `accept` names the media type.
 */
export async function request(method, url, options = {}) {
  const response = await send(method, url, options);
  if (!response.ok) {
    const json = (response.headers.get("Content-Type") || "").includes("json");
    throw new HttpError(response.status, json ? await readJSON(response) : null);
  }
  return response;
}

/** A JSON call (`body` any JSON value): resolves to {status, data}, data null for 204. */
export async function api(method, url, body, { keepalive = false } = {}) {
  const response = await send(method, url, { body, keepalive });
  const data = await readJSON(response);
  if (!response.ok) throw new HttpError(response.status, data);
  return { status: response.status, data };
}
