// What Herald's pages (/inbox, /portal) share, loaded before each page's own script: taking a
// link's credential out of the address bar, calling the API, making elements (every value
// written as text, never as HTML) and saying times.
"use strict";

/** The link credential in the address bar, if any, taken out of it (and so out of the history,
 *  bookmarks and screenshots) before any request is made. */
function takeCredential() {
  if (!location.hash.startsWith("#hrldl_")) return null;
  const raw = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);
  try { return decodeURIComponent(raw); } catch (_) { return raw; }
}

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls Herald's API on this origin (with the session cookie, or `authorization` when given);
 *  answers the JSON body (null for 204), or throws an ApiError with the API's code and message. */
async function callApi(method, path, body, authorization) {
  const headers = {};
  if (authorization) headers["Authorization"] = authorization;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body !== undefined ? JSON.stringify(body) : undefined,
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network", "Herald could not be reached (" + e.message + ")");
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message || "HTTP " + res.status);
  }
  return data;
}

/** An element with attributes (`class`, others set as given; true is present, false or null
 *  absent) and children (strings become text). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** Polling while the tab is shown: `schedule()` sets the next `load` `ms` from now when
 *  `active()` and the tab is visible (`body[data-polling]` says which), `cancel()` drops the
 *  next one, `pause()` drops it and says so; a tab hidden pauses, shown again loads at once. */
function pollWhileShown(load, active, ms) {
  let timer = null;
  const cancel = () => clearTimeout(timer);
  const pause = () => { cancel(); document.body.dataset.polling = "paused"; };
  const schedule = () => {
    cancel();
    const on = active() && document.visibilityState === "visible";
    if (on) timer = setTimeout(load, ms);
    document.body.dataset.polling = on ? "on" : "paused";
  };
  document.addEventListener("visibilitychange", () => {
    if (!active()) return;
    if (document.visibilityState === "visible") load();
    else pause();
  });
  return { schedule, cancel, pause };
}

/** A time in the reader's locale. */
function when(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** "in 3 hours", "2 minutes ago". */
function fromNow(t) {
  const ms = new Date(t) - Date.now();
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const abs = Math.abs(ms);
  if (abs < 90e3) return rtf.format(Math.round(ms / 1e3), "second");
  if (abs < 90 * 60e3) return rtf.format(Math.round(ms / 60e3), "minute");
  if (abs < 48 * 3600e3) return rtf.format(Math.round(ms / 3600e3), "hour");
  return rtf.format(Math.round(ms / 86400e3), "day");
}
