// The approval inbox: lists pending approvals and human contacts through Herald's own API
// (with the tenant token in an Authorization header, so no cookie and no CSRF), and answers
// them. Every value from the API is written with textContent, never as HTML.
"use strict";

const KEY = "herald.token";
const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(KEY); }

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: Object.assign({ "Authorization": "Bearer " + token() }, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error((data.error && data.error.message) || ("HTTP " + res.status));
    err.status = res.status;
    throw err;
  }
  return data;
}

function notice(text, isError) {
  const n = $("notice");
  n.textContent = text;
  n.className = isError ? "error" : "";
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function meta(op) {
  const parts = ["call " + op.call_id];
  if (op.run_id) parts.push("run " + op.run_id);
  parts.push("asked " + new Date(op.requested_at).toLocaleString());
  if (op.expires_at) parts.push("expires " + new Date(op.expires_at).toLocaleString());
  return el("p", { class: "meta" }, parts.join(" · "));
}

async function answer(kind, op, body, what) {
  // One answer per click: the card's buttons wait for this one (a decision is final).
  const card = document.querySelector('li[data-call-id="' + CSS.escape(op.call_id) + '"]');
  if (card) card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  try {
    await api("POST", "/v1/" + kind + "/" + encodeURIComponent(op.call_id) + "/respond", body);
    notice(what + " " + op.call_id + ". The agent is being resumed.");
  } catch (e) {
    notice("Could not answer " + op.call_id + ": " + e.message, true);
  }
  await load();
}

function approvalCard(op) {
  const comment = el("textarea", { rows: "2", placeholder: "Comment (sent to the agent; needed to reject)", "aria-label": "Comment for " + op.call_id });
  const approve = el("button", { class: "approve", type: "button" }, "Approve");
  const reject = el("button", { class: "reject", type: "button" }, "Reject");
  approve.addEventListener("click", () => answer("approvals", op, { approved: true, comment: comment.value || undefined }, "Approved"));
  reject.addEventListener("click", () => {
    if (!comment.value.trim()) { notice("Say why in the comment: the agent reads it.", true); comment.focus(); return; }
    answer("approvals", op, { approved: false, comment: comment.value }, "Rejected");
  });
  return el("li", { class: "card", "data-call-id": op.call_id },
    el("h3", {}, op.spec.fn),
    meta(op),
    el("pre", {}, JSON.stringify(op.spec.kwargs, null, 2)),
    comment,
    el("div", { class: "actions" }, approve, reject));
}

function contactCard(op) {
  const response = el("textarea", { rows: "3", placeholder: "Your answer", "aria-label": "Answer for " + op.call_id });
  const send = el("button", { class: "answer", type: "button" }, "Send answer");
  send.addEventListener("click", () => {
    if (!response.value.trim()) { notice("Write an answer first.", true); response.focus(); return; }
    answer("human_contacts", op, { response: response.value }, "Answered");
  });
  return el("li", { class: "card", "data-call-id": op.call_id },
    el("h3", {}, op.spec.subject || "Question"),
    meta(op),
    el("pre", {}, op.spec.msg),
    response,
    el("div", { class: "actions" }, send));
}

async function fill(kind, listId, countId, card) {
  const items = [];
  let cursor = null;
  do {
    const page = await api("GET", "/v1/" + kind + "?status=pending&limit=500" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && items.length < 2000);
  const list = $(listId);
  list.replaceChildren(...(items.length ? items.map(card) : [el("li", { class: "empty" }, "Nothing waiting.")]));
  $(countId).textContent = "(" + items.length + ")";
}

async function load() {
  try {
    await Promise.all([
      fill("approvals", "approvals", "approval-count", approvalCard),
      fill("human_contacts", "contacts", "contact-count", contactCard),
    ]);
    show(true);
  } catch (e) {
    if (e.status === 401) { sessionStorage.removeItem(KEY); show(false); notice("That token was not accepted.", true); return; }
    notice("Could not load the inbox: " + e.message, true);
  }
}

function show(signedIn) {
  $("sign-in").hidden = signedIn;
  $("inbox").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    notice("");
    load();
  });
  $("sign-out").addEventListener("click", () => { sessionStorage.removeItem(KEY); show(false); notice("Signed out."); });
  $("refresh").addEventListener("click", load);
  if (token()) load(); else show(false);
});
