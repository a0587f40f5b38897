// Drives Herald's /inbox in headless Chromium as people use it (tests/inbox.rs sets the scene and
// checks the webhooks afterwards). Usage: node inbox.mjs CONFIG_JSON, where the config holds
// base, shots (screenshot folder), full_token, respond_token, and links {jane, sam, sam_id, run1,
// revoked, expired} (each an "/inbox#hrldl_..." URL but sam_id). The scene: pending approvals
// deploy_1 (run_1), email_1 (kwargs holding a <script>), restart_1, cache_1 and the question
// question_1, each with a callback.
//
// - Jane (context A) opens her link: the fragment leaves the address bar, the page says
//   "Answering as Jane Doe" and until when the link works, sends no Authorization header, and
//   its cookie is HttpOnly and SameSite=Strict; axe-core finds no serious violation.
// - A second approver on the same link (B) sees Jane's answers appear without a reload; the
//   question B had started to answer stays on screen, saying Jane answered it.
// - Sam (C, his own link) has the page hidden, so it stops polling; he answers restart_1 after
//   Jane did and is shown who answered and when, not an error. Revoking Sam's link then ends his
//   open page's session.
// - A link for run_1 only (R) lists deploy_1 and nothing else.
// - Expired and revoked links say so; a `respond` token signs in, with a name recorded as who
//   answered; signing out of a link's session stays signed out after a reload.
import { harness } from "./harness.mjs";

const cfg = JSON.parse(process.argv[2]);
const { base, shots } = cfg;
const T = 15000;

const { browser, pages, must, step, person, axe, setVisible } = await harness("inbox", shots);

const text = (page, sel) => page.locator(sel).innerText();
const pending = (page, id) => page.locator(`#approvals li[data-call-id="${id}"], #contacts li[data-call-id="${id}"]`);
const answered = (page, id) => page.locator(`#history-list li[data-call-id="${id}"]`);
const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

// ---- Jane opens her link ------------------------------------------------------------------------
const A = await person("Jane (A)");
await step(A.page, "Jane opens her link", async () => {
  await A.page.goto(base + cfg.links.jane);
  await A.page.waitForSelector("#approvals li[data-call-id=deploy_1]", { timeout: T });
  for (const id of ["email_1", "restart_1", "cache_1"]) await A.page.waitForSelector(`#approvals li[data-call-id=${id}]`);
  await A.page.waitForSelector("#contacts li[data-call-id=question_1]");
  await must(!A.page.url().includes("#") && !A.page.url().includes("hrldl_"), "the credential is still in the address bar");
  await must((await text(A.page, "#answering-as")) === "Answering as Jane Doe", "no 'Answering as Jane Doe'");
  await must((await text(A.page, "#link-scope")).includes("This link works until"), "the link's expiry is not shown");
  await must(!(await A.page.isVisible("#sign-in")), "the sign-in form is shown to a signed-in person");
  await must((await A.page.locator("script").count()) === 2, "a value from the API was rendered as HTML (the page has its two scripts only)");
  await must((await text(A.page, "#approvals li[data-call-id=email_1] pre")).includes("<script>alert(1)</script>"), "the kwargs are not shown as text");
  await must((await A.page.evaluate(() => document.cookie)) === "", "the session cookie can be read by the page's script");
  const cookies = await A.context.cookies();
  const session = cookies.find((c) => c.name === "herald_session");
  await must(session && session.httpOnly && session.sameSite === "Strict", "the session cookie: " + JSON.stringify(cookies));
  await shot(A.page, "inbox-link");
  await axe(A.page, "the inbox with pending items");
});

// ---- a second approver on the same link, Sam on his own, Rita on run_1's --------------------------
const B = await person("Jane again (B)");
const C = await person("Sam (C)");
const R = await person("Rita, run_1 only (R)");
await step(B.page, "a second approver opens the same link", async () => {
  await B.page.goto(base + cfg.links.jane);
  await B.page.waitForSelector("#contacts li[data-call-id=question_1]", { timeout: T });
  await B.page.locator("#contacts li[data-call-id=question_1] textarea").fill("us-east-1 (B started on this)");
});
await step(C.page, "Sam opens his link and leaves the tab", async () => {
  await C.page.goto(base + cfg.links.sam);
  await C.page.waitForSelector("#approvals li[data-call-id=restart_1]", { timeout: T });
  await must((await text(C.page, "#answering-as")) === "Answering as Sam Roe", "no 'Answering as Sam Roe'");
  await setVisible(C.page, false);
  await C.page.waitForSelector("#pending[aria-busy=false]", { timeout: T });
  await must((await C.page.getAttribute("body", "data-polling")) === "paused", "the hidden page did not pause its polling");
});
const hiddenSince = Date.now();
const bPolls = Number(await B.page.getAttribute("body", "data-polls"));
await step(R.page, "a link for run_1 only", async () => {
  await R.page.goto(base + cfg.links.run1);
  await R.page.waitForSelector("#approvals li[data-call-id=deploy_1]", { timeout: T });
  await must((await R.page.locator("#approvals li[data-call-id]").count()) === 1, "the run_1 link lists more than run_1's approval");
  await must((await R.page.locator("#contacts li[data-call-id]").count()) === 0, "the run_1 link lists a question of no run");
  await must((await text(R.page, "#link-scope")).includes("run run_1 only"), "the run_1 link does not say it is for run_1 only");
});

// ---- Jane answers -----------------------------------------------------------------------------------
await step(A.page, "Jane rejects, approves and answers", async () => {
  const deploy = A.page.locator("#approvals li[data-call-id=deploy_1]");
  await deploy.locator("button.reject").click();
  await must((await text(A.page, "#notice")).includes("comment"), "rejecting without a comment was not refused");
  await must((await deploy.locator("textarea").getAttribute("aria-invalid")) === "true", "the empty comment is not marked invalid");
  await deploy.locator("textarea").fill("Not on a Friday.");
  await deploy.locator("button.reject").click();
  await deploy.waitFor({ state: "detached", timeout: T });
  await answered(A.page, "deploy_1").waitFor({ timeout: T });
  const said = await answered(A.page, "deploy_1").innerText();
  await must(said.includes("Rejected by Jane Doe") && said.includes("Not on a Friday."), "Jane's history: " + said);

  await A.page.locator("#approvals li[data-call-id=email_1] button.approve").click();
  await pending(A.page, "email_1").waitFor({ state: "detached", timeout: T });
  const q = A.page.locator("#contacts li[data-call-id=question_1]");
  await q.locator("textarea").fill("eu-west-1, please");
  await q.locator("button.answer").click();
  await q.waitFor({ state: "detached", timeout: T });
  await must((await A.page.locator("#contacts .empty").count()) === 1, "the questions list should say nothing is waiting");
  await A.page.locator("#approvals li[data-call-id=restart_1] button.approve").click();
  await pending(A.page, "restart_1").waitFor({ state: "detached", timeout: T });
  await answered(A.page, "restart_1").waitFor({ timeout: T });
});

// ---- the second approver sees them without reloading --------------------------------------------------
await step(B.page, "the second approver sees Jane's answers appear", async () => {
  await pending(B.page, "deploy_1").waitFor({ state: "detached", timeout: T });
  await answered(B.page, "deploy_1").waitFor({ timeout: T });
  const said = await answered(B.page, "deploy_1").innerText();
  await must(said.includes("Rejected by Jane Doe") && said.includes("Not on a Friday."), "B's history: " + said);
  await answered(B.page, "email_1").waitFor({ timeout: T });
  // The question B had started on stays, saying who answered it.
  const q = B.page.locator("#contacts li[data-call-id=question_1][data-settled]");
  await q.waitFor({ timeout: T });
  const note = await q.innerText();
  await must(note.includes("Answered by Jane Doe") && note.includes("Answered elsewhere"), "B's settled question: " + note);
  await must((await B.page.locator("#contacts li[data-call-id=question_1] textarea").inputValue()).includes("B started"), "B's unsent text was swept away");
  await shot(B.page, "inbox-second-approver");
  await q.locator("button.dismiss").click();
  await must((await B.page.locator("#contacts li[data-call-id=question_1]").count()) === 0, "Dismiss did not remove the note");
});

// ---- Sam answers late: he is told who answered and when -------------------------------------------------
await step(C.page, "Sam answers restart_1 after Jane did", async () => {
  // B polls every few seconds: two more of its polls mean a whole poll interval went by, in
  // which Sam's hidden page, had it kept polling, would have read the lists at least once.
  await B.page.waitForFunction((n) => Number(document.body.dataset.polls) >= n + 2, bPolls, { timeout: T });
  const listReads = C.page.requests.filter((r) => r.at > hiddenSince && r.url.includes("status=")).length;
  await must(listReads === 0, `the hidden page kept polling (${listReads} list reads in ${Date.now() - hiddenSince} ms)`);
  const card = C.page.locator("#approvals li[data-call-id=restart_1]");
  await card.locator("textarea").fill("Not during the sale.");
  await card.locator("button.reject").click();
  const note = card.locator("p.outcome");
  await note.waitFor({ timeout: T });
  const said = await note.innerText();
  await must(said.includes("Already answered by someone else") && said.includes("Approved by Jane Doe on"), "Sam's note: " + said);
  await must(!(await text(C.page, "#notice")).includes("Could not"), "the late answer was reported as an error");
  await shot(C.page, "inbox-already-answered");
  await setVisible(C.page, true);
  await answered(C.page, "restart_1").waitFor({ timeout: T });
  await must((await answered(C.page, "restart_1").innerText()).includes("Approved by Jane Doe"), "restart_1 in Sam's history");
});
await step(C.page, "revoking Sam's link ends his open session", async () => {
  const r = await fetch(`${base}/v1/links/${cfg.links.sam_id}`, { method: "DELETE", headers: { Authorization: "Bearer " + cfg.full_token } });
  await must(r.status === 204, "revoking Sam's link answered " + r.status);
  await C.page.waitForSelector("#sign-in", { state: "visible", timeout: T });
  await must((await text(C.page, "#notice")).includes("revoked"), "Sam's page: " + (await text(C.page, "#notice")));
});

// ---- expired and revoked links ----------------------------------------------------------------------------
for (const which of ["expired", "revoked"]) {
  const X = await person(which + " link");
  await step(X.page, `an ${which} link`, async () => {
    await X.page.goto(base + cfg.links[which]);
    await X.page.waitForSelector("#sign-in", { state: "visible", timeout: T });
    const n = await text(X.page, "#notice");
    await must(n.includes("This link has expired or was revoked: ask for a new one."), `the ${which} link's page says: ${n}`);
    await must(!X.page.url().includes("hrldl_"), "the credential is still in the address bar");
    await must(!(await X.page.isVisible("#pending")), "the inbox is shown for an " + which + " link");
    await shot(X.page, "inbox-" + which);
    if (which === "expired") await axe(X.page, "the sign-in page");
  });
}

// ---- a respond token, with a name -----------------------------------------------------------------------
const K = await person("a respond token (K)");
await step(K.page, "signing in with a respond token", async () => {
  await K.page.goto(base + "/inbox");
  await K.page.waitForSelector("#sign-in", { state: "visible", timeout: T });
  await K.page.fill("#token", cfg.respond_token);
  await K.page.fill("#name", "Tom Token");
  await K.page.click("#sign-in button[type=submit]");
  await K.page.waitForSelector("#approvals li[data-call-id=cache_1]", { timeout: T });
  await must((await text(K.page, "#answering-as")) === "Answering as Tom Token", "no 'Answering as Tom Token'");
  await K.page.locator("#approvals li[data-call-id=cache_1] button.approve").click();
  await answered(K.page, "cache_1").waitFor({ timeout: T });
  await must((await answered(K.page, "cache_1").innerText()).includes("Approved by Tom Token"), "cache_1 in the token's history");
  await must((await K.page.locator("#history-list li[data-call-id]").count()) === 5, "the history should hold the 5 answers");
  await must((await text(K.page, "#approval-count")) === "(0)", "the approvals count after the last answer: " + (await text(K.page, "#approval-count")));
  await shot(K.page, "inbox-token");
  await axe(K.page, "the inbox with its history");
  await K.page.click("#sign-out");
  await K.page.waitForSelector("#sign-in", { state: "visible", timeout: T });
});

// ---- Jane signs out ----------------------------------------------------------------------------------------
await step(A.page, "Jane signs out", async () => {
  await answered(A.page, "cache_1").waitFor({ timeout: T });
  await shot(A.page, "inbox-done");
  await A.page.click("#sign-out");
  await A.page.waitForSelector("#sign-in", { state: "visible", timeout: T });
  await A.page.reload();
  await A.page.waitForSelector("#sign-in", { state: "visible", timeout: T });
  await must(!(await A.page.isVisible("#pending")), "a reload after signing out shows the inbox again");
});

for (const page of pages) {
  await step(page, `${page.person}'s page had no error`, async () => {
    await must(!page.errors.length, `errors in ${page.person}'s page: ${page.errors.join("; ")}`);
    if (page.person !== "a respond token (K)") {
      const sent = page.requests.filter((r) => r.auth);
      await must(!sent.length, `${page.person}'s page sent an Authorization header: ${sent.map((r) => r.url).join(", ")}`);
    }
  });
}
await browser.close();
console.log("inbox: Jane rejected deploy_1, approved email_1 and restart_1, answered question_1; B saw it live; " +
  "Sam was told restart_1 was approved by Jane; run_1's link listed deploy_1 alone; expired and revoked links refused; " +
  "Tom (respond token) approved cache_1; axe-core: no serious violation");
