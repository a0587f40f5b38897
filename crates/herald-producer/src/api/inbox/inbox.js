// The approval inbox. Two ways in:
// - an inbox link, `/inbox#hrldl_...`: the credential in the fragment (never sent with a request,
//   never in a Referer) is taken out of the address bar at once and exchanged for a session
//   (`POST /v1/sessions`), which rides in an HttpOnly cookie the page cannot read; the API
//   records the link's responder with each answer;
// - a `respond` token pasted by the person, kept in this tab's sessionStorage and sent as Bearer.
// It lists pending approvals and questions, then a history of answered ones, answers them, and
// refreshes itself every few seconds while it is shown. Every value from the API is written
// with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "herald.token";
const NAME_KEY = "herald.responder";
const POLL_MS = 3000;
const HISTORY_EVERY = 10; // polls between history reloads when nothing changed
const HISTORY_PAGE = 20; // answered items shown per "Show older"
const PENDING_CAP = 2000; // pending items read of each kind

// Read the fragment before anything else, and take it out of the address bar (and so out of the
// history, bookmarks and screenshots) before any request is made.
let linkCredential = takeCredential();

/** "session" (a link's cookie), "token" (Bearer from sessionStorage) or null (signed out). */
let mode = null;
/** Goes up at every sign-in and sign-out: a load begun before it must not touch the page. */
let era = 0;
const poll = pollWhileShown(load, () => Boolean(mode), POLL_MS);
let loading = null;
let again = false;
let polls = 0;
let historyShown = HISTORY_PAGE;
let historyItems = [];
/** Whether the server has settled items older than those read. */
let historyMore = false;
let lastPendingKey = null;
let uid = 0;
/** Call ids answered from this page: a poll that started before the answer does not bring them back. */
const answeredHere = new Set();

/** The API, as this page signs in: the session cookie, or the pasted token. */
function api(method, path, body) {
  return callApi(method, path, body, mode === "token" ? "Bearer " + sessionStorage.getItem(TOKEN_KEY) : null);
}

function notice(text, isError) {
  const n = $("notice");
  n.textContent = text || "";
  n.className = isError ? "error" : "";
  n.dataset.from = "";
}

const kindPath = (op) => (op.kind === "human_contact" ? "human_contacts" : "approvals");
const noun = (op) => (op.kind === "human_contact" ? "question" : "approval");
const title = (op) => (op.kind === "human_contact" ? op.spec.subject || "Question" : op.spec.fn);

/** "Approved by Jane Doe on 22 Nov 2026, 10:04:31" and the like. */
function outcome(op) {
  const s = op.status || {};
  const by = s.responder ? " by " + s.responder : " (no name recorded)";
  switch (s.state) {
    case "approved": return "Approved" + by + " on " + when(s.responded_at);
    case "rejected": return "Rejected" + by + " on " + when(s.responded_at);
    case "answered": return "Answered" + by + " on " + when(s.responded_at);
    case "expired": return "Expired unanswered" + (op.expires_at ? " on " + when(op.expires_at) : "");
    default: return "Waiting for an answer";
  }
}

function meta(op) {
  const parts = ["call " + op.call_id];
  if (op.run_id) parts.push("run " + op.run_id);
  parts.push("asked " + when(op.requested_at));
  if (op.expires_at && (!op.status || op.status.state === "pending")) parts.push("expires " + when(op.expires_at));
  return el("p", { class: "meta" }, parts.join(" · "));
}

function body(op) {
  if (op.kind === "human_contact") return el("p", { class: "message" }, op.spec.msg);
  return el("pre", { class: "kwargs" }, JSON.stringify(op.spec.kwargs, null, 2));
}

// ---- pending cards ----------------------------------------------------------------------------

function card(op) {
  const n = ++uid;
  const heading = el("h4", { id: "t" + n }, title(op));
  const li = el("li", { class: "card " + op.kind, "data-call-id": op.call_id, "aria-labelledby": "t" + n },
    heading, meta(op), body(op));
  const status = el("p", { class: "card-status", id: "s" + n });
  if (op.kind === "human_contact") {
    const box = el("textarea", { id: "f" + n, rows: "3", "aria-describedby": "s" + n });
    const send = el("button", { class: "answer", type: "button", "aria-describedby": "t" + n }, "Send answer");
    send.addEventListener("click", () => {
      if (!box.value.trim()) return refuse(box, status, "Write an answer first.");
      respond(li, op, { response: box.value }, "Answered");
    });
    li.append(el("label", { for: "f" + n }, "Your answer"), box, status, el("div", { class: "actions" }, send));
  } else {
    const box = el("textarea", { id: "f" + n, rows: "2", "aria-describedby": "s" + n });
    const approve = el("button", { class: "approve", type: "button", "aria-describedby": "t" + n }, "Approve");
    const reject = el("button", { class: "reject", type: "button", "aria-describedby": "t" + n }, "Reject");
    approve.addEventListener("click", () =>
      respond(li, op, { approved: true, comment: box.value.trim() ? box.value : undefined }, "Approved"));
    reject.addEventListener("click", () => {
      if (!box.value.trim()) return refuse(box, status, "Say why in the comment before rejecting: the agent reads it.");
      respond(li, op, { approved: false, comment: box.value }, "Rejected");
    });
    li.append(el("label", { for: "f" + n }, "Comment for the agent (needed to reject)"), box, status,
      el("div", { class: "actions" }, approve, reject));
  }
  return li;
}

function refuse(box, status, text) {
  box.setAttribute("aria-invalid", "true");
  status.textContent = text;
  status.className = "card-status error";
  notice(text, true);
  box.focus();
  box.addEventListener("input", () => box.removeAttribute("aria-invalid"), { once: true });
}

/** Whether the person has started on this card: typed something, or is in it. */
function touched(li) {
  return li.contains(document.activeElement) || [...li.querySelectorAll("textarea")].some((t) => t.value.trim());
}

/** Turns a pending card into a note of what became of it (answered by someone else, expired):
 *  it stays until dismissed, so that what the person was doing is not swept away. */
function settle(li, op, lead) {
  const hadFocus = li.contains(document.activeElement);
  const list = li.parentElement;
  if (list && list.firstElementChild !== li) list.insertBefore(li, list.firstElementChild);
  li.dataset.settled = "true";
  li.classList.add("settled");
  li.querySelectorAll("textarea").forEach((t) => { t.disabled = true; });
  li.querySelectorAll(".actions, .card-status").forEach((x) => x.remove());
  const said = op ? outcome(op) : "it is no longer waiting (answered or expired)";
  const text = el("p", { class: "outcome " + (op ? op.status.state : ""), tabindex: "-1" }, lead + said + ".");
  const dismiss = el("button", { type: "button", class: "dismiss" }, "Dismiss");
  dismiss.addEventListener("click", () => {
    const list = li.parentElement;
    li.remove();
    if (list) recount(list);
    $("pending-title").focus();
  });
  li.append(text, el("div", { class: "actions" }, dismiss));
  if (hadFocus) text.focus();
  return text;
}

/** After a card left `list` without a poll: its count, and "Nothing waiting." when it is empty. */
function recount(list) {
  const waiting = list.querySelectorAll("li[data-call-id]:not([data-settled])").length;
  const count = $(list.id === "contacts" ? "contact-count" : "approval-count");
  count.textContent = "(" + waiting + ")";
  if (!list.children.length) list.append(el("li", { class: "empty" }, "Nothing waiting."));
}

async function respond(li, op, answer, done) {
  const status = li.querySelector(".card-status");
  li.dataset.answering = "true";
  li.querySelectorAll("button, textarea").forEach((b) => { b.disabled = true; });
  status.textContent = "Sending…";
  status.className = "card-status";
  if (mode === "token") {
    const name = sessionStorage.getItem(NAME_KEY);
    if (name) answer.responder = name;
  }
  try {
    const answered = await api("POST", "/v1/" + kindPath(op) + "/" + encodeURIComponent(op.call_id) + "/respond", answer);
    answeredHere.add(op.call_id);
    const list = li.parentElement;
    li.remove();
    if (list) recount(list);
    notice(done + " “" + title(op) + "” (" + op.call_id + "). The agent is being resumed.");
    if (answered && answered.call_id) upsertHistory(answered);
    $("pending-title").focus();
  } catch (e) {
    if (e.status !== 409) delete li.dataset.answering;
    if (e.status === 409) {
      // Someone answered it meanwhile (or its time ran out): say who and when, not an error.
      let now = null;
      try { now = await api("GET", "/v1/" + kindPath(op) + "/" + encodeURIComponent(op.call_id)); } catch (_) { /* below */ }
      const lead = e.code === "operation_expired" ? "Too late: " : "Already answered by someone else, so your answer was not sent: ";
      answeredHere.add(op.call_id);
      const note = settle(li, now, lead);
      delete li.dataset.answering;
      note.focus();
      if (li.parentElement) recount(li.parentElement);
      notice(note.textContent);
      if (now) upsertHistory(now);
      return;
    }
    li.querySelectorAll("button, textarea").forEach((b) => { b.disabled = false; });
    if (e.status === 401) return signedOut(e);
    status.textContent = "Not sent: " + e.message;
    status.className = "card-status error";
    notice("Could not answer " + op.call_id + ": " + e.message, true);
  }
}

/** Puts the wanted cards in `list` in order, keeping those already there (with what the person
 *  typed and where the focus is), and the settled ones at the top. Answers the call ids of the
 *  cards that left the list untouched by the person; touched ones are returned to be settled. */
function syncList(list, items, countEl) {
  const byId = new Map();
  for (const li of list.querySelectorAll("li[data-call-id]")) byId.set(li.dataset.callId, li);
  const want = new Set(items.map((op) => op.call_id));
  const gone = [];
  for (const [id, li] of byId) {
    if (want.has(id) || li.dataset.settled || li.dataset.answering) continue;
    gone.push({ id, li, touched: touched(li) });
  }
  for (const g of gone) if (!g.touched) g.li.remove();
  const desired = [
    ...list.querySelectorAll("li[data-settled], li[data-answering]"),
    ...gone.filter((g) => g.touched).map((g) => g.li),
  ];
  for (const op of items) {
    const li = byId.get(op.call_id);
    if (li && (li.dataset.settled || li.dataset.answering)) continue;
    desired.push(li || card(op));
  }
  for (const x of list.querySelectorAll("li.empty")) x.remove();
  desired.forEach((li, i) => {
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  if (!desired.length) list.append(el("li", { class: "empty" }, "Nothing waiting."));
  countEl.textContent = "(" + items.length + (items.length >= PENDING_CAP ? "+" : "") + ")";
  return gone;
}

async function readAll(kind, status, cap) {
  const items = [];
  let cursor = null;
  do {
    const page = await api("GET", "/v1/" + kind + "?status=" + status + "&limit=500" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && items.length < cap);
  return items;
}

const byAsked = (a, b) => (a.requested_at < b.requested_at ? -1 : a.requested_at > b.requested_at ? 1 : 0);

// ---- history ----------------------------------------------------------------------------------

const settledAt = (op) => (op.status && op.status.responded_at) || op.expires_at || op.requested_at;
/** Last settled first, as the API orders `?order=settled` (then call_id, descending). */
const bySettled = (a, b) => {
  const [x, y] = [settledAt(a), settledAt(b)];
  if (x !== y) return x < y ? 1 : -1;
  return a.call_id < b.call_id ? 1 : a.call_id > b.call_id ? -1 : 0;
};

/** The `want` last settled operations of a kind, and whether there are older ones. */
async function readSettled(kind, want) {
  const items = [];
  let cursor = null;
  do {
    const limit = Math.min(500, want - items.length);
    const page = await api("GET", "/v1/" + kind + "?order=settled&limit=" + limit + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && items.length < want);
  return { items, more: Boolean(cursor) };
}

function upsertHistory(op) {
  historyItems = historyItems.filter((h) => !(h.call_id === op.call_id && h.kind === op.kind));
  historyItems.push(op);
  renderHistory();
}

let historyKey = null;

function renderHistory() {
  historyItems.sort(bySettled);
  const shown = historyItems.slice(0, historyShown);
  const key = shown.map((op) => op.kind + ":" + op.call_id + ":" + op.status.state).join("|");
  const older = historyMore || historyItems.length > historyShown;
  $("history-count").textContent = "(" + shown.length + (older ? "+" : "") + ")";
  $("more").hidden = !older;
  if (key === historyKey) return;
  historyKey = key;
  const list = $("history-list");
  if (!shown.length) {
    list.replaceChildren(el("li", { class: "empty" }, "Nothing answered yet."));
    return;
  }
  list.replaceChildren(...shown.map((op) => {
    const s = op.status;
    const extra = [];
    if (s.comment) extra.push(el("p", { class: "said" }, el("span", { class: "label" }, "Comment: "), s.comment));
    if (s.response) extra.push(el("p", { class: "said" }, el("span", { class: "label" }, "Answer: "), s.response));
    return el("li", { class: "card answered " + op.kind, "data-call-id": op.call_id, "data-state": s.state },
      el("h3", {}, title(op) + " ", el("span", { class: "kind" }, "(" + noun(op) + ")")),
      el("p", { class: "outcome " + s.state }, outcome(op)),
      ...extra,
      meta(op),
      el("details", {}, el("summary", {}, op.kind === "human_contact" ? "Question asked" : "Arguments"), body(op)));
  }));
}

/** The history as far as it is shown: of each kind, as many as are shown (the server orders). */
async function loadHistory() {
  const [a, c] = await Promise.all([readSettled("approvals", historyShown), readSettled("human_contacts", historyShown)]);
  historyItems = [...a.items, ...c.items];
  historyMore = a.more || c.more;
  renderHistory();
}

// ---- loading and polling ----------------------------------------------------------------------

async function loadOnce(began) {
  const fresh = (ops) => ops.filter((op) => !answeredHere.has(op.call_id));
  const [approvals, contacts] = (await Promise.all([
    readAll("approvals", "pending", PENDING_CAP),
    readAll("human_contacts", "pending", PENDING_CAP),
  ])).map(fresh);
  if (began !== era) return; // signed out (or in again) meanwhile: this answer is not for the page
  approvals.sort(byAsked);
  contacts.sort(byAsked);
  const goneA = syncList($("approvals"), approvals, $("approval-count"));
  const goneC = syncList($("contacts"), contacts, $("contact-count"));
  const pendingKey = [...approvals, ...contacts].map((op) => op.call_id).join("|");
  const changed = pendingKey !== lastPendingKey;
  const first = lastPendingKey === null;
  lastPendingKey = pendingKey;
  if (changed || polls % HISTORY_EVERY === 0) await loadHistory();
  if (began !== era) return;
  const gone = [...goneA, ...goneC];
  if (!first && gone.length) {
    // Answered by someone else (or expired) since the last look: say so.
    const said = [];
    for (const g of gone) {
      let op = historyItems.find((h) => h.call_id === g.id);
      if (!op && g.touched) {
        const kind = g.li.classList.contains("human_contact") ? "human_contacts" : "approvals";
        op = await api("GET", "/v1/" + kind + "/" + encodeURIComponent(g.id)).catch(() => null);
      }
      if (g.touched && g.li.isConnected) settle(g.li, op, "Answered elsewhere while you were on it: ");
      if (op) said.push("“" + title(op) + "”: " + outcome(op));
    }
    if (said.length) notice("Meanwhile: " + said.join("; ") + ".");
  }
}

/** Loads now (or right after the load under way), then schedules the next poll while shown. */
async function load() {
  if (loading) { again = true; return loading; }
  poll.cancel();
  $("pending").setAttribute("aria-busy", "true");
  const began = era;
  loading = (async () => {
    try {
      do {
        again = false;
        await loadOnce(began);
        polls += 1;
      } while (again && began === era);
      if (began !== era) return;
      showInbox();
      if ($("notice").className === "error" && $("notice").dataset.from === "load") notice("");
    } catch (e) {
      if (began !== era) return;
      // 401: the session or token is no more; 403: the tenant was disabled, or it may not read.
      if (e.status === 401 || e.status === 403) return signedOut(e);
      notice("Could not refresh the inbox: " + e.message + " (trying again in a few seconds)", true);
      $("notice").dataset.from = "load";
    } finally {
      loading = null;
      $("pending").setAttribute("aria-busy", "false");
      document.body.dataset.polls = String(polls);
      poll.schedule();
    }
  })();
  return loading;
}

// ---- signing in and out -----------------------------------------------------------------------

function showInbox() {
  $("welcome").hidden = true;
  $("pending").hidden = false;
  $("history").hidden = false;
  $("who").hidden = false;
}

function showWelcome() {
  poll.pause();
  era += 1;
  mode = null;
  document.body.dataset.mode = "signed-out";
  $("welcome").hidden = false;
  $("pending").hidden = true;
  $("history").hidden = true;
  $("who").hidden = true;
  $("approvals").replaceChildren();
  $("contacts").replaceChildren();
  $("history-list").replaceChildren();
  historyItems = [];
  historyMore = false;
  historyShown = HISTORY_PAGE;
  historyKey = null;
  lastPendingKey = null;
}

function signedIn(how, session) {
  era += 1;
  mode = how;
  document.body.dataset.mode = how;
  if (how === "session") {
    $("answering-as").textContent = session.responder ? "Answering as " + session.responder : "Answering with an inbox link";
    const parts = ["This link works until " + when(session.expires_at) + " (" + fromNow(session.expires_at) + ")."];
    if (session.run_id) parts.push("It shows run " + session.run_id + " only.");
    $("link-scope").textContent = parts.join(" ");
  } else {
    const name = sessionStorage.getItem(NAME_KEY);
    $("answering-as").textContent = name ? "Answering as " + name : "Answering with an API token";
    $("link-scope").textContent = name ? "Signed in with an API token." : "Signed in with an API token; answers are recorded without a name.";
  }
  showInbox();
  return load();
}

function signedOut(e) {
  const was = mode;
  if (was === "token") sessionStorage.removeItem(TOKEN_KEY);
  showWelcome();
  if (was === "session") notice("Your session has ended: " + e.message, true);
  else notice("That token was not accepted: " + e.message, true);
}

async function exchange(credential) {
  try {
    const session = await api("POST", "/v1/sessions", { credential });
    sessionStorage.removeItem(TOKEN_KEY);
    notice("");
    return signedIn("session", session);
  } catch (e) {
    showWelcome();
    if (e.status === 401) notice("This link has expired or was revoked: ask for a new one.", true);
    else notice("Could not open the link: " + e.message, true);
  }
}

async function start() {
  $("sign-in").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    const name = $("name").value.trim();
    if (name) sessionStorage.setItem(NAME_KEY, name); else sessionStorage.removeItem(NAME_KEY);
    $("token").value = "";
    notice("");
    signedIn("token");
  });
  $("sign-out").addEventListener("click", async () => {
    const was = mode;
    if (was === "session") {
      try { await api("DELETE", "/v1/sessions/current"); } catch (e) {
        if (e.status !== 401) { notice("Could not sign out: " + e.message, true); return; }
      }
    }
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(NAME_KEY);
    showWelcome();
    notice(was === "session" ? "Signed out. Open your link again to come back." : "Signed out.");
    $("welcome-title").focus();
  });
  $("refresh").addEventListener("click", () => load());
  $("more").addEventListener("click", () => {
    historyShown += HISTORY_PAGE;
    loadHistory().catch((e) => notice("Could not load older answers: " + e.message, true));
  });

  // A link opened in a tab already on /inbox changes only the fragment: no reload.
  window.addEventListener("hashchange", () => {
    const credential = takeCredential();
    if (credential) exchange(credential);
  });
  if (linkCredential) return exchange(linkCredential);
  if (sessionStorage.getItem(TOKEN_KEY)) return signedIn("token");
  try {
    const session = await api("GET", "/v1/sessions/current");
    return signedIn("session", session);
  } catch (e) {
    showWelcome();
    if (e.status !== 401 && e.status !== 404) notice("Could not reach Herald: " + e.message, true);
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
