// The consumer portal: the page where the owner of a receiving system manages the endpoints a
// tenant sends it webhooks at. The way in is a portal link, `/portal#hrldl_...`: the credential
// in the fragment (never sent with a request, never in a Referer) is taken out of the address
// bar at once and exchanged for a session (`POST /v1/sessions`) that rides in an HttpOnly
// cookie. The API narrows that session to the link's consumer; the page only shows what the
// API answers. It lists the endpoints, adds, changes, tests, disables and deletes them, rotates
// their secret (shown once), shows each one's deliveries and their attempts, retries and
// replays, and refreshes the open endpoint every few seconds while it is shown. Every value
// from the API is written with textContent or a safe attribute, never as HTML.
"use strict";

const POLL_MS = 3000;
const FOLLOW_MS = 1000; // how often a running replay or a test event is looked at
const FOLLOW_FOR_MS = 120000; // how long a test event is followed
const PAGE = 20; // deliveries per page
const ENDPOINTS_CAP = 2000;
const ATTEMPT_PAGES = 5; // pages of 500 attempts read of one delivery

const linkCredential = takeCredential();

/** The portal session (`{consumer, expires_at}`), null when signed out. */
let session = null;
/** Goes up whenever the open endpoint changes or the session ends: late answers are dropped. */
let era = 0;
const poll = pollWhileShown(load, () => Boolean(session), POLL_MS);
let loading = null;
let again = false;
let polls = 0;
/** The open endpoint, its deliveries page and the delivery whose attempts are shown. */
let open = null;
let page = { param: "", next: null, prev: null };
let attemptsOf = null;
let replayTimer = null;
let testTimer = null;
let uid = 0;

/** The API, with the session cookie. */
const api = (method, path, body) => callApi(method, path, body);

const enc = encodeURIComponent;
const ep = (id, tail) => "/v1/endpoints/" + enc(id) + (tail || "");

function notice(text, isError) {
  const n = $("notice");
  n.textContent = text || "";
  n.className = isError ? "error" : "";
}

/** A failed call, said in the status region; a 401 means the session is over. */
function failed(what, e) {
  if (e.status === 401) return ended(e);
  notice(what + ": " + e.message, true);
}

const dash = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));
const types = (list) => (list && list.length ? list.join(", ") : "all types");

/** `order.*, invoice.paid` as the API's `event_types` array (empty: every type). */
function parseTypes(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

/** An endpoint's status in words: "failing", "disabled (the receiver answered 410 Gone)". */
function statusText(e) {
  if (e.status === "disabled") return "disabled" + (e.disabled_reason ? " (" + e.disabled_reason + ")" : "");
  return e.status === "healthy" ? "enabled" : e.status;
}

/** Puts one row per item in `tbody`, in order, keeping the rows already there (and the focus in
 *  them): `make` builds a new one, `fill` writes an item's values into it. */
function syncRows(tbody, items, make, fill, empty, columns) {
  const old = new Map([...tbody.querySelectorAll("tr[data-key]")].map((tr) => [tr.dataset.key, tr]));
  const rows = items.map((item) => {
    const tr = old.get(item.id) || make(item);
    old.delete(item.id);
    tr.item = item;
    fill(tr, item);
    return tr;
  });
  for (const tr of old.values()) tr.remove();
  for (const tr of tbody.querySelectorAll("tr.empty")) tr.remove();
  rows.forEach((tr, i) => {
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
  });
  if (!rows.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: String(columns) }, empty)));
}

// ---- the secret, shown once ---------------------------------------------------------------------

/** Shows a secret the API answered once (create, rotate), with a copy button. */
function showSecret(secret, forWhat, overlap) {
  if (!session) return; // the session ended meanwhile: the page is signed out, show nothing
  $("secret-value").textContent = secret;
  $("secret-for").textContent = forWhat;
  $("secret-overlap").textContent = overlap || "";
  $("secret-overlap").hidden = !overlap;
  $("secret-box").hidden = false;
  $("secret-title").focus();
}

function hideSecret() {
  $("secret-value").textContent = "";
  $("secret-box").hidden = true;
  (open ? $("detail-title") : $("endpoints-title")).focus();
}

async function copySecret() {
  const value = $("secret-value").textContent;
  try {
    await navigator.clipboard.writeText(value);
    notice("The secret is copied.");
  } catch (_) {
    const range = document.createRange();
    range.selectNodeContents($("secret-value"));
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    notice("This browser did not let the page copy: the secret is selected, copy it with Ctrl+C (⌘C).");
  }
}

// ---- confirmation -------------------------------------------------------------------------------

/** Asks before something that cannot be undone; answers whether the person said yes. */
function confirmAction(title, text, yes) {
  const d = $("confirm");
  const back = document.activeElement;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yes;
  d.returnValue = "";
  return new Promise((resolve) => {
    d.addEventListener("close", () => {
      if (back && back.isConnected) back.focus();
      resolve(d.returnValue === "yes");
    }, { once: true });
    d.showModal();
    $("confirm-no").focus();
  });
}

// ---- the endpoints list -------------------------------------------------------------------------

function endpointRow(item) {
  const n = ++uid;
  const openBtn = el("button", { type: "button", class: "link mono", id: "ep" + n });
  openBtn.addEventListener("click", (ev) => openEndpoint(ev.currentTarget.closest("tr").item));
  const tr = el("tr", { "data-key": item.id, "data-endpoint-id": item.id },
    el("td", {}, openBtn), el("td", {}), el("td", { class: "mono" }), el("td", {}, el("span", { class: "badge" })));
  return tr;
}

function fillEndpoint(tr, e) {
  const [url, description, kinds, status] = tr.children;
  url.firstChild.textContent = e.url;
  description.textContent = dash(e.description);
  kinds.textContent = types(e.event_types);
  status.firstChild.textContent = statusText(e);
  status.firstChild.className = "badge " + e.status;
  tr.dataset.status = e.status;
  if (open && open.id === e.id) tr.setAttribute("aria-current", "true");
  else tr.removeAttribute("aria-current");
}

async function loadEndpoints() {
  const items = [];
  let cursor = null;
  do {
    const got = await api("GET", "/v1/endpoints?limit=500" + (cursor ? "&cursor=" + enc(cursor) : ""));
    items.push(...got.data);
    cursor = got.next_cursor;
  } while (cursor && items.length < ENDPOINTS_CAP);
  return items;
}

function renderEndpoints(items) {
  syncRows($("endpoint-rows"), items, endpointRow, fillEndpoint, "No endpoint yet: add one to receive webhooks.", 4);
  $("endpoint-count").textContent = "(" + items.length + ")";
}

function toggleAdd(show) {
  $("add-form").hidden = !show;
  $("add-toggle").setAttribute("aria-expanded", String(show));
  if (show) $("add-url").focus();
}

async function createEndpoint(ev) {
  ev.preventDefault();
  const url = $("add-url").value.trim();
  if (!url) return invalid($("add-url"), "Write the endpoint's URL first.");
  const body = { url, event_types: parseTypes($("add-types").value) };
  if ($("add-description").value.trim()) body.description = $("add-description").value.trim();
  try {
    const made = await api("POST", "/v1/endpoints", body);
    $("add-form").reset();
    toggleAdd(false);
    notice("Endpoint " + made.url + " added.");
    await openEndpoint(made, true);
    showSecret(made.secret, "The secret that signs the webhooks sent to " + made.url + ".");
  } catch (e) {
    failed("The endpoint was not added", e);
  }
}

/** Marks a field as wrong, says why, and puts the focus in it. */
function invalid(input, text) {
  input.setAttribute("aria-invalid", "true");
  input.addEventListener("input", () => input.removeAttribute("aria-invalid"), { once: true });
  notice(text, true);
  input.focus();
}

// ---- one endpoint -------------------------------------------------------------------------------

async function openEndpoint(e, quiet) {
  era += 1;
  open = e;
  page = { param: "", next: null, prev: null };
  attemptsOf = null;
  stopFollowing();
  $("attempts").hidden = true;
  $("attempt-rows").replaceChildren();
  $("delivery-rows").replaceChildren();
  $("stats").replaceChildren();
  $("state-filter").value = "";
  $("test-result").hidden = true;
  $("replay-state").hidden = true;
  fillSettings(e);
  renderEndpoint(e);
  $("detail").hidden = false;
  for (const tr of $("endpoint-rows").querySelectorAll("tr[data-key]")) fillEndpoint(tr, tr.item);
  if (!quiet) $("detail-title").focus();
  await load();
}

function closeEndpoint() {
  era += 1;
  open = null;
  attemptsOf = null;
  stopFollowing();
  $("detail").hidden = true;
  for (const tr of $("endpoint-rows").querySelectorAll("tr[data-key]")) fillEndpoint(tr, tr.item);
  $("endpoints-title").focus();
}

function stopFollowing() {
  clearTimeout(replayTimer);
  clearTimeout(testTimer);
}

/** The settings form, filled from the endpoint (only when it is opened or saved: a refresh must
 *  not overwrite what the person is typing). */
function fillSettings(e) {
  $("edit-url").value = e.url;
  $("edit-description").value = e.description || "";
  $("edit-types").value = (e.event_types || []).join(", ");
}

function renderEndpoint(e) {
  open = e;
  $("detail-url").textContent = e.url;
  $("detail").dataset.endpointId = e.id;
  $("detail").dataset.status = e.status;
  const parts = ["Status: " + statusText(e), "event types: " + types(e.event_types)];
  if (e.description) parts.push(e.description);
  parts.push("id " + e.id);
  $("detail-meta").textContent = parts.join(" · ");
  $("toggle-enabled").textContent = e.status === "disabled" ? "Enable endpoint" : "Disable endpoint";
}

function rate(window) {
  if (!window || !window.attempts) return "no attempt";
  const pct = Math.round(window.success_rate * 1000) / 10;
  return pct + "% (" + window.successes + " of " + window.attempts + " attempts succeeded)";
}

function lastTime(last, withError) {
  if (!last) return "none";
  const what = last.status_code ? "answered " + last.status_code : withError && last.error ? last.error : "no answer";
  return when(last.at) + ", " + what;
}

function renderStats(s) {
  const rows = [
    ["Success rate, last hour", rate(s.last_hour)],
    ["Success rate, last day", rate(s.last_day)],
    ["Last success", lastTime(s.last_success, false)],
    ["Last failure", lastTime(s.last_failure, true)],
  ];
  $("stats").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

async function saveSettings(ev) {
  ev.preventDefault();
  if (!open) return;
  const url = $("edit-url").value.trim();
  if (!url) return invalid($("edit-url"), "The URL cannot be empty.");
  const body = { url, description: $("edit-description").value.trim(), event_types: parseTypes($("edit-types").value) };
  const began = era;
  try {
    const saved = await api("PATCH", ep(open.id), body);
    if (began !== era) return;
    fillSettings(saved);
    renderEndpoint(saved);
    notice("Saved: " + saved.url + " takes " + types(saved.event_types) + ". The next attempt goes there.");
    await load();
  } catch (e) {
    failed("The changes were not saved", e);
  }
}

async function toggleEnabled() {
  if (!open) return;
  const enabling = open.status === "disabled";
  if (!enabling && !(await confirmAction("Disable this endpoint?",
    "Nothing is sent to " + open.url + " while it is disabled; events published meanwhile are not kept for it (replay them after enabling).",
    "Disable"))) return;
  try {
    const e = await api("POST", ep(open.id, enabling ? "/enable" : "/disable"));
    renderEndpoint(e);
    notice(enabling ? "Enabled: deliveries that waited are sent now." : "Disabled: nothing is sent to it until you enable it.");
    await load();
  } catch (e) {
    failed(enabling ? "Could not enable it" : "Could not disable it", e);
  }
}

async function rotateSecret() {
  if (!open) return;
  const e = open;
  const standard = e.signature_scheme !== "hmac-sha256-hex";
  const overlap = standard
    ? "The previous secret keeps signing next to the new one for 24 hours: switch your receiver to the new one within that time."
    : "Webhooks are signed with the new secret alone from the next attempt: switch your receiver to it now.";
  if (!(await confirmAction("Rotate the signing secret?", "Herald makes a new secret for " + e.url + ". " + overlap, "Rotate secret"))) return;
  try {
    const rotated = await api("POST", ep(e.id, "/rotate-secret"));
    showSecret(rotated.secret, "The new secret that signs the webhooks sent to " + rotated.url + ".", overlap);
    notice("The secret was rotated.");
  } catch (err) {
    failed("The secret was not rotated", err);
  }
}

async function sendTest() {
  if (!open) return;
  const out = $("test-result");
  try {
    const sent = await api("POST", ep(open.id, "/test"));
    out.hidden = false;
    out.className = "result";
    out.dataset.state = "sent";
    out.textContent = "Test event " + sent.event_id + " sent; waiting for your receiver's answer…";
    notice("A test event is on its way.");
    followTest(sent.delivery_id, era, Date.now() + FOLLOW_FOR_MS);
    load();
  } catch (e) {
    failed("The test event was not sent", e);
  }
}

/** Follows the test event's delivery until it is delivered or failed, and says how it went. */
async function followTest(id, began, until) {
  const out = $("test-result");
  let d;
  try {
    d = await api("GET", "/v1/deliveries/" + enc(id));
  } catch (e) {
    if (began === era) failed("Could not follow the test event", e);
    return;
  }
  if (began !== era) return;
  out.dataset.state = d.state;
  if (d.state === "delivered") {
    out.className = "result ok";
    out.textContent = "The test event was delivered: your receiver answered " + dash(d.last_status_code) + ".";
    return;
  }
  if (d.state === "failed" || d.state === "cancelled") {
    out.className = "result bad";
    out.textContent = "The test event failed: " + dash(d.last_error) + ".";
    return;
  }
  if (d.attempt_count > 0) {
    out.className = "result bad";
    out.textContent = "Your receiver did not take the test event yet (" + dash(d.last_error) + "); Herald tries again at " + when(d.next_attempt_at) + ".";
  }
  if (Date.now() < until) testTimer = setTimeout(() => followTest(id, began, until), FOLLOW_MS);
}

async function deleteEndpoint() {
  if (!open) return;
  const e = open;
  if (!(await confirmAction("Delete this endpoint?",
    "Nothing more is sent to " + e.url + ", and its waiting deliveries are cancelled. This cannot be undone.",
    "Delete endpoint"))) return;
  try {
    await api("DELETE", ep(e.id));
    closeEndpoint();
    notice("Endpoint " + e.url + " deleted.");
    await load();
  } catch (err) {
    failed("The endpoint was not deleted", err);
  }
}

// ---- deliveries and attempts --------------------------------------------------------------------

function deliveryRow(d) {
  const n = ++uid;
  const attempts = el("button", { type: "button", class: "attempts", "aria-describedby": "d" + n });
  attempts.textContent = "Attempts";
  attempts.addEventListener("click", (ev) => showAttempts(ev.currentTarget.closest("tr").item));
  const retry = el("button", { type: "button", class: "retry", "aria-describedby": "d" + n });
  retry.textContent = "Retry";
  retry.addEventListener("click", (ev) => retryDelivery(ev.currentTarget.closest("tr").item, ev.currentTarget));
  return el("tr", { "data-key": d.id, "data-delivery-id": d.id },
    el("td", { class: "mono", id: "d" + n }), el("td", {}, el("span", { class: "badge" })), el("td", { class: "num" }),
    el("td", { class: "num" }), el("td", { class: "error-text" }), el("td", {}),
    el("td", {}, el("div", { class: "row-actions" }, attempts, retry)));
}

function fillDelivery(tr, d) {
  const [event, state, count, code, error, next] = tr.children;
  event.textContent = d.event_id;
  state.firstChild.textContent = d.state;
  state.firstChild.className = "badge " + d.state;
  count.textContent = String(d.attempt_count);
  code.textContent = dash(d.last_status_code);
  error.textContent = dash(d.last_error);
  next.textContent = d.next_attempt_at ? when(d.next_attempt_at) : "—";
  tr.dataset.state = d.state;
  tr.querySelector("button.retry").hidden = !(d.state === "failed" || d.state === "delivered");
}

function deliveriesPath() {
  const q = ["limit=" + PAGE];
  if ($("state-filter").value) q.push("state=" + enc($("state-filter").value));
  if (page.param) q.push(page.param);
  return ep(open.id, "/deliveries?" + q.join("&"));
}

function renderDeliveries(got) {
  syncRows($("delivery-rows"), got.data, deliveryRow, fillDelivery,
    $("state-filter").value ? "No " + $("state-filter").value + " delivery." : "Nothing sent to this endpoint yet.", 7);
  page.next = got.next_cursor;
  page.prev = got.prev_cursor;
  $("older").disabled = !page.next;
  $("newer").disabled = !page.prev;
  if (attemptsOf) {
    const fresh = got.data.find((d) => d.id === attemptsOf.id);
    if (fresh) attemptsOf = fresh;
  }
}

function turnPage(param) {
  page.param = param;
  load();
}

async function retryDelivery(d, button) {
  button.disabled = true;
  try {
    await api("POST", "/v1/deliveries/" + enc(d.id) + "/retry");
    notice("Delivery of event " + d.event_id + " retried: it is sent again now.");
    await load();
  } catch (e) {
    failed("Delivery of event " + d.event_id + " was not retried", e);
  } finally {
    button.disabled = false;
  }
}

async function showAttempts(d) {
  attemptsOf = d;
  $("attempts-title").textContent = "Attempts of event " + d.event_id;
  $("attempts-note").textContent = "Delivery " + d.id + " to " + d.url + ", oldest first.";
  $("attempt-rows").replaceChildren();
  $("attempts").hidden = false;
  $("attempts-title").focus();
  await load();
}

/** The attempts of delivery `d`, oldest first, a few pages deep. */
async function loadAttempts(d) {
  const mine = [];
  let cursor = null;
  let pages = 0;
  do {
    const got = await api("GET", "/v1/deliveries/" + enc(d.id) + "/attempts?limit=500" + (cursor ? "&cursor=" + enc(cursor) : ""));
    mine.push(...got.data);
    cursor = got.next_cursor;
    pages += 1;
  } while (cursor && pages < ATTEMPT_PAGES);
  return { mine, more: Boolean(cursor) };
}

function attemptRow(a) {
  return el("tr", { "data-key": a.id, "data-attempt-id": a.id },
    el("td", { class: "num" }), el("td", {}), el("td", { class: "num" }), el("td", { class: "error-text" }),
    el("td", { class: "num" }), el("td", {}, el("pre", { class: "excerpt" })));
}

function fillAttempt(tr, a) {
  const [n, started, code, error, duration, response] = tr.children;
  n.textContent = String(a.attempt);
  started.textContent = when(a.started_at);
  code.textContent = dash(a.status_code);
  error.textContent = dash(a.error);
  duration.textContent = a.duration_ms + " ms";
  const pre = response.firstChild;
  pre.textContent = a.response_excerpt === null || a.response_excerpt === undefined ? "(no answer)" : a.response_excerpt || "(empty body)";
  tr.dataset.status = a.status_code === null ? "" : String(a.status_code);
}

function renderAttempts(found) {
  syncRows($("attempt-rows"), found.mine, attemptRow, fillAttempt, "No attempt yet.", 6);
  if (found.more) $("attempts-note").textContent = "Delivery " + attemptsOf.id + ": its first " + found.mine.length + " attempts, oldest first (later ones are not shown).";
}

// ---- replay -------------------------------------------------------------------------------------

/** A `datetime-local` value (the person's local time) as RFC 3339 in UTC; null when empty. */
function localToUtc(value) {
  if (!value) return null;
  const d = new Date(value);
  return isNaN(d) ? undefined : d.toISOString();
}

async function startReplay(ev) {
  ev.preventDefault();
  if (!open) return;
  const since = localToUtc($("replay-since").value);
  const until = localToUtc($("replay-until").value);
  if (!since) return invalid($("replay-since"), "Say from when to replay.");
  if (until === undefined) return invalid($("replay-until"), "That end of the window is not a time.");
  const body = { since };
  if (until) body.until = until;
  try {
    const r = await api("POST", ep(open.id, "/replay"), body);
    clearTimeout(replayTimer);
    $("replay-state").hidden = false;
    showReplay(r);
    notice("Replay started.");
    followReplay(r.id, era);
  } catch (e) {
    failed("The replay did not start", e);
  }
}

function showReplay(r) {
  const from = Date.parse(r.since);
  const to = Date.parse(r.until);
  const at = Date.parse(r.reached);
  const done = r.state === "done" ? 1 : to > from ? Math.min(1, Math.max(0, (at - from) / (to - from))) : 0;
  $("replay-progress").value = done;
  $("replay-progress").setAttribute("aria-valuetext", Math.round(done * 100) + "%");
  $("replay-state").dataset.state = r.state;
  $("replay-state").dataset.replayId = r.id;
  const counts = r.events_scanned + " events looked at, " + r.events_matched + " for this endpoint, " + r.deliveries_created + " sent again";
  const text = {
    running: "Replaying " + when(r.since) + " to " + when(r.until) + ": " + Math.round(done * 100) + "% (" + counts + ")…",
    done: "Replay done: " + counts + ".",
    failed: "Replay failed: " + dash(r.error) + " (" + counts + ").",
  }[r.state] || r.state;
  $("replay-text").textContent = text;
  $("replay-text").className = "result" + (r.state === "done" ? " ok" : r.state === "failed" ? " bad" : "");
}

/** Looks at the replay every second until it is done or failed. */
async function followReplay(id, began) {
  let r;
  try {
    r = await api("GET", "/v1/replays/" + enc(id));
  } catch (e) {
    if (began === era) failed("Could not follow the replay", e);
    return;
  }
  if (began !== era) return;
  showReplay(r);
  if (r.state === "running") replayTimer = setTimeout(() => followReplay(id, began), FOLLOW_MS);
  else {
    notice(r.state === "done" ? "The replay is done." : "The replay failed: " + dash(r.error), r.state !== "done");
    load();
  }
}

// ---- loading and polling ------------------------------------------------------------------------

/** Reads the list and, when one is open, the endpoint, its stats, deliveries and attempts. */
async function loadOnce(began) {
  const e = open;
  const [items, detail] = await Promise.all([
    loadEndpoints(),
    e ? loadDetail(e) : null,
  ]);
  if (began !== era) return;
  renderEndpoints(items);
  if (!detail) return;
  if (detail.gone) {
    closeEndpoint();
    notice("That endpoint no longer exists.", true);
    return;
  }
  renderEndpoint(detail.endpoint);
  renderStats(detail.stats);
  renderDeliveries(detail.deliveries);
  if (detail.attempts) renderAttempts(detail.attempts);
}

async function loadDetail(e) {
  const d = attemptsOf;
  try {
    const [endpoint, stats, deliveries, attempts] = await Promise.all([
      api("GET", ep(e.id)),
      api("GET", ep(e.id, "/stats")),
      api("GET", deliveriesPath()),
      d ? loadAttempts(d) : null,
    ]);
    return { endpoint, stats, deliveries, attempts };
  } catch (err) {
    if (err.status === 404) return { gone: true };
    throw err;
  }
}

/** Loads now (or right after the load under way), then schedules the next one while shown. */
async function load() {
  if (!session) return;
  if (loading) { again = true; return loading; }
  poll.cancel();
  document.body.dataset.loading = "true";
  loading = (async () => {
    try {
      do {
        again = false;
        const began = era;
        await loadOnce(began);
        polls += 1;
      } while (again && session);
      if ($("notice").dataset.from === "load") { notice(""); delete $("notice").dataset.from; }
    } catch (e) {
      if (e.status === 401) return ended(e);
      notice("Could not refresh: " + e.message + " (trying again in a few seconds)", true);
      $("notice").dataset.from = "load";
    } finally {
      loading = null;
      document.body.dataset.loading = "false";
      document.body.dataset.polls = String(polls);
      poll.schedule();
    }
  })();
  return loading;
}

// ---- signing in and out -------------------------------------------------------------------------

function signedIn(s) {
  if (s.kind !== "portal") {
    return refuse("This is not a portal link (it opens the " + s.kind + "): open the portal link you were sent.");
  }
  era += 1;
  session = s;
  document.body.dataset.mode = "portal";
  const title = s.consumer ? "Webhooks for " + s.consumer : "Webhooks for all endpoints";
  $("title").textContent = title;
  document.title = title;
  $("link-scope").textContent = "This link works until " + when(s.expires_at) + " (" + fromNow(s.expires_at) + ").";
  $("who").hidden = false;
  $("refused").hidden = true;
  $("endpoints").hidden = false;
  return load();
}

/** Shows the way back in instead of the portal, saying why. */
function refuse(why, quietly) {
  era += 1;
  session = null;
  open = null;
  attemptsOf = null;
  poll.pause();
  stopFollowing();
  document.body.dataset.mode = "signed-out";
  for (const id of ["who", "endpoints", "detail", "secret-box"]) $(id).hidden = true;
  for (const id of ["endpoint-rows", "delivery-rows", "attempt-rows", "stats"]) $(id).replaceChildren();
  $("secret-value").textContent = "";
  $("refused").hidden = false;
  $("refused-why").textContent = why;
  if (!quietly) notice(why, true);
}

/** The session ended under the page (link revoked or expired). */
function ended(e) {
  refuse("Your session has ended (" + e.message + "): this link has expired or was revoked.");
}

async function exchange(credential) {
  try {
    const s = await api("POST", "/v1/sessions", { credential });
    notice("");
    return signedIn(s);
  } catch (e) {
    if (e.status === 401) refuse("This link has expired or was revoked: ask for a new one.");
    else refuse("Could not open the link: " + e.message);
  }
}

async function signOut() {
  try { await api("DELETE", "/v1/sessions/current"); } catch (e) {
    if (e.status !== 401) return notice("Could not sign out: " + e.message, true);
  }
  refuse("You signed out.", true);
  notice("Signed out. Open your link again to come back.");
  $("refused-title").focus();
}

function wire() {
  $("sign-out").addEventListener("click", signOut);
  $("add-toggle").addEventListener("click", () => toggleAdd($("add-form").hidden));
  $("add-cancel").addEventListener("click", () => { $("add-form").reset(); toggleAdd(false); $("add-toggle").focus(); });
  $("add-form").addEventListener("submit", createEndpoint);
  $("copy-secret").addEventListener("click", copySecret);
  $("secret-done").addEventListener("click", hideSecret);
  $("close-detail").addEventListener("click", closeEndpoint);
  $("edit-form").addEventListener("submit", saveSettings);
  $("toggle-enabled").addEventListener("click", toggleEnabled);
  $("send-test").addEventListener("click", sendTest);
  $("rotate-secret").addEventListener("click", rotateSecret);
  $("delete-endpoint").addEventListener("click", deleteEndpoint);
  $("state-filter").addEventListener("change", () => turnPage(""));
  $("older").addEventListener("click", () => turnPage("cursor=" + enc(page.next)));
  $("newer").addEventListener("click", () => turnPage("before=" + enc(page.prev)));
  $("close-attempts").addEventListener("click", () => {
    attemptsOf = null;
    $("attempts").hidden = true;
    $("deliveries-title").focus();
  });
  $("replay-form").addEventListener("submit", startReplay);
  $("confirm-yes").addEventListener("click", () => $("confirm").close("yes"));
  $("confirm-no").addEventListener("click", () => $("confirm").close("no"));
  // A link opened in a tab already on /portal changes only the fragment: no reload.
  window.addEventListener("hashchange", () => {
    const credential = takeCredential();
    if (credential) exchange(credential);
  });
}

async function start() {
  wire();
  if (linkCredential) return exchange(linkCredential);
  try {
    return signedIn(await api("GET", "/v1/sessions/current"));
  } catch (e) {
    if (e.status === 401 || e.status === 404) refuse("No portal session is open in this browser.", true);
    else refuse("Could not reach Herald: " + e.message);
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
