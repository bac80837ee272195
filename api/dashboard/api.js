// The API client: the key (this tab's sessionStorage only, sent as a Bearer header, never in
// a URL), JSON requests, and the server-sent event stream read through fetch (EventSource
// cannot send an Authorization header).

const KEY_SLOT = "ordersync.key";

export const key = {
  get: () => sessionStorage.getItem(KEY_SLOT),
  set: (value) => sessionStorage.setItem(KEY_SLOT, value),
  forget: () => sessionStorage.removeItem(KEY_SLOT),
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};

/** Called with the API's message whenever a request is answered 401. */
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${key.get() ?? ""}`, Accept: "application/json", ...extra };
}

async function errorOf(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: the status line says enough
  }
  return new ApiError(response.status, detail);
}

/** JSON from `path` (with `params` as its query); throws ApiError with the API's message. */
export async function request(method, path, { params, body, keyOverride } = {}) {
  const query = params ? `?${new URLSearchParams(clean(params))}` : "";
  const init = { method, headers: headers(), cache: "no-store" };
  if (keyOverride !== undefined) init.headers.Authorization = `Bearer ${keyOverride}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path + query, init);
  } catch (error) {
    throw new ApiError(0, `the API does not answer (${error.message})`);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && keyOverride === undefined) onUnauthorized(error.detail);
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

export const get = (path, params) => request("GET", path, { params });
export const post = (path, body) => request("POST", path, { body });

function clean(params) {
  const pairs = [];
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) pairs.push([name, String(one)]);
  }
  return pairs;
}

export const accountPath = (account) => `/api/v1/accounts/${encodeURIComponent(account)}`;

// --- server-sent events -----------------------------------------------------------------------

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 15000;

/**
 * Follow the account's event stream until `signal` aborts: reconnects with backoff and
 * resumes after the last event id seen, so nothing is missed while the stream was down.
 * `onState(state, info)`: "connecting", "live" (the first bytes arrived), "reconnecting"
 * (info: the wait in ms, the reason). `onEvent(event)`: each event's parsed data.
 */
export async function followEvents(account, { onEvent, onState, signal }) {
  let after = null;
  let backoff = BACKOFF_MIN_MS;
  while (!signal.aborted) {
    onState("connecting");
    let reason;
    try {
      const params = after === null ? "" : `?after=${after}`;
      const response = await fetch(`${accountPath(account)}/events/stream${params}`, {
        headers: headers({ Accept: "text/event-stream" }),
        cache: "no-store",
        signal,
      });
      if (response.status === 401) {
        onUnauthorized((await errorOf(response)).detail);
        return;
      }
      if (!response.ok) throw await errorOf(response);
      let opened = false;
      for await (const frame of frames(response.body, signal)) {
        if (!opened) {
          opened = true;
          backoff = BACKOFF_MIN_MS;
          onState("live");
        }
        // The opening frame's id is where the server starts: a stream that drops before any
        // event came resumes from there.
        if (frame.id !== undefined && /^\d+$/.test(frame.id)) after = Number(frame.id);
        if (frame.data === undefined) continue;
        if (frame.event === "revoked") { // the server ends the stream of a revoked key
          onUnauthorized(JSON.parse(frame.data).detail);
          return;
        }
        try {
          onEvent(JSON.parse(frame.data), frame.event);
        } catch (error) {
          console.error("ordersync: an event could not be applied", error, frame);
        }
      }
      reason = "the stream ended";
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status === 404) {
        onState("offline", { reason: error.detail });
        return;
      }
      reason = error.message || String(error);
    }
    if (signal.aborted) return;
    onState("reconnecting", { waitMs: backoff, reason });
    await pause(backoff, signal);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * The frames of a text/event-stream body as `{id, event, data, comment}` (the fields a frame
 * had), one per blank-line-terminated block, as the HTML standard parses them.
 */
async function* frames(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const stop = () => reader.cancel().catch(() => {});
  signal.addEventListener("abort", stop, { once: true });
  let buffer = "";
  let frame = {};
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop(); // an unfinished line waits for the next chunk
      for (const line of lines) {
        if (line === "") {
          if (Object.keys(frame).length) yield frame;
          frame = {};
          continue;
        }
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "") frame.comment = value;
        else if (field === "data") frame.data = frame.data === undefined ? value : `${frame.data}\n${value}`;
        else if (field === "id" || field === "event" || field === "retry") frame[field] = value;
      }
    }
  } finally {
    signal.removeEventListener("abort", stop);
    reader.releaseLock?.();
  }
}
