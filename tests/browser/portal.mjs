// Drives Herald's /portal in headless Chromium as a consumer uses it (tests/portal.rs sets the
// scene, publishes the event and checks the webhooks). Usage: node portal.mjs CONFIG_JSON, where
// the config holds base, shots (screenshot folder), links {acme, expired, revoked} (each a
// "/portal#hrldl_..." URL), the receiver's URLs bad_url (answers 500 with bad_body), good_url
// (answers 200), and globex_url, globex_id: another consumer's endpoint, made with the full token.
//
// It talks to tests/portal.rs over its standard streams: a line `@herald {json}` on stdout asks
// the Rust side for something (publish the event, check what the receiver got), and the answer
// comes back as one JSON line on stdin.
//
// - The acme link opens the portal: the fragment leaves the address bar, the header says
//   "Webhooks for acme" and until when the link works, the cookie is HttpOnly and SameSite=Strict,
//   no Authorization header is sent, globex's endpoint is nowhere in the page (and 404 to it).
// - Adding an endpoint shows its secret once; the request names no consumer. The event the Rust
//   side publishes fails at the 500 receiver: the page shows it failed with 500 and, in its
//   attempts, the receiver's body; the endpoint is "failing".
// - Fixing the URL and retrying delivers it; rotating shows a new secret once; a test event is
//   delivered; a replay runs to done; axe-core finds no serious violation (list, endpoint open).
// - A hidden page stops polling; a reload keeps the session and shows no secret; signing out
//   stays signed out; expired and revoked links are refused.
import { createInterface } from "node:readline";
import { harness } from "./harness.mjs";

const cfg = JSON.parse(process.argv[2]);
const { base, shots } = cfg;
const T = 20000;

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const { browser, pages, must, step, person: newPerson, axe, setVisible } = await harness("portal", shots);

/** Asks tests/portal.rs for something; answers its reply. */
async function ask(message) {
  console.log("@herald " + JSON.stringify(message));
  const { value, done } = await answers.next();
  if (done) throw new Error("the Rust side closed the pipe");
  const reply = JSON.parse(value);
  if (reply.error) throw new Error("the Rust side: " + reply.error);
  return reply;
}

/** A person, whose context may read and write the clipboard (the secret's copy button). */
const person = (who) => newPerson(who, { permissions: ["clipboard-read", "clipboard-write"] });
const text = (page, sel) => page.locator(sel).innerText();
const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
const row = (page, id) => page.locator(`#delivery-rows tr[data-delivery-id="${id}"]`);



/** Reads the secret the page shows once, then dismisses it; answers it. */
async function takeSecret(page) {
  await page.waitForSelector("#secret-box", { state: "visible", timeout: T });
  const secret = (await text(page, "#secret-value")).trim();
  await must(/^whsec_[A-Za-z0-9+/=]{40,}$/.test(secret), "the secret shown: " + secret);
  await must((await page.evaluate(() => document.activeElement && document.activeElement.id)) === "secret-title",
    "the focus did not move to the secret");
  await page.click("#copy-secret");
  await page.waitForFunction(() => document.getElementById("notice").textContent.includes("copied"), null, { timeout: T });
  await must((await page.evaluate(() => navigator.clipboard.readText())) === secret, "the copy button did not copy the secret");
  await page.click("#secret-done");
  await must(!(await page.isVisible("#secret-box")), "the secret box stayed open");
  await must(!(await page.content()).includes(secret), "the secret is still in the page after it was dismissed");
  return secret;
}

// ---- the acme link opens the portal ---------------------------------------------------------------
const A = await person("acme (A)");
const page = A.page;
await step(page, "the acme link opens the portal", async () => {
  await page.goto(base + cfg.links.acme);
  await page.waitForSelector("#endpoints", { state: "visible", timeout: T });
  await page.waitForSelector("#endpoint-rows tr.empty", { timeout: T });
  await must(!page.url().includes("#") && !page.url().includes("hrldl_"), "the credential is still in the address bar");
  await must((await text(page, "#title")) === "Webhooks for acme", "the title: " + (await text(page, "#title")));
  await must((await text(page, "#link-scope")).includes("This link works until"), "the link's expiry is not shown");
  await must((await page.evaluate(() => document.cookie)) === "", "the session cookie can be read by the page's script");
  const session = (await A.context.cookies()).find((c) => c.name === "herald_session");
  await must(session && session.httpOnly && session.sameSite === "Strict", "the session cookie: " + JSON.stringify(session));
  await must(!(await page.content()).includes(cfg.globex_url), "globex's endpoint is in acme's page");
  const status = await page.evaluate(async (id) => (await fetch("/v1/endpoints/" + id)).status, cfg.globex_id);
  await must(status === 404, "acme's session reading globex's endpoint answered " + status);
});

// ---- acme adds an endpoint at its failing receiver --------------------------------------------------
let created, endpointId, eventId, deliveryId;
await step(page, "acme adds an endpoint; its secret is shown once", async () => {
  await page.click("#add-toggle");
  await page.fill("#add-url", cfg.bad_url);
  await page.fill("#add-description", "Orders into the ERP <script>alert(1)</script>");
  await page.fill("#add-types", "order.*, invoice.paid");
  await page.click("#add-form button[type=submit]");
  created = await takeSecret(page);
  await page.waitForSelector("#detail", { state: "visible", timeout: T });
  endpointId = await page.getAttribute("#detail", "data-endpoint-id");
  await must(endpointId && endpointId.startsWith("ep_"), "no endpoint open after adding it");
  await must((await text(page, "#detail-url")) === cfg.bad_url, "the open endpoint's URL: " + (await text(page, "#detail-url")));
  const post = page.requests.find((r) => r.method === "POST" && r.url.endsWith("/v1/endpoints"));
  await must(post && !JSON.parse(post.body).hasOwnProperty("consumer"), "the page sent a consumer: " + (post && post.body));
  await page.waitForSelector(`#endpoint-rows tr[data-endpoint-id="${endpointId}"]`, { timeout: T });
  const listed = await page.locator(`#endpoint-rows tr[data-endpoint-id="${endpointId}"]`).innerText();
  await must((await page.locator("script").count()) === 2, "a value from the API was rendered as HTML (the page has its two scripts only)");
  await must(listed.includes("Orders into the ERP <script>alert(1)</script>") && listed.includes("order.*, invoice.paid") && listed.includes("enabled"),
    "the endpoint's row: " + listed);
});

await step(page, "the event fails at the receiver: 500 and its body", async () => {
  ({ event_id: eventId } = await ask({ step: "endpoint_added", endpoint_id: endpointId, secret: created }));
  const failed = page.locator("#delivery-rows tr[data-state=failed]");
  await failed.waitFor({ timeout: T });
  deliveryId = await failed.getAttribute("data-delivery-id");
  const cells = await failed.locator("td").allInnerTexts();
  await must(cells[0] === eventId && cells[3] === "500" && cells[4].includes("500"), "the failed delivery's row: " + JSON.stringify(cells));
  await page.waitForSelector(`#endpoint-rows tr[data-endpoint-id="${endpointId}"][data-status=failing]`, { timeout: T });
  await must((await text(page, "#detail-meta")).includes("Status: failing"), "the open endpoint does not say failing");
  await failed.locator("button.attempts").click();
  await page.waitForSelector("#attempt-rows tr[data-attempt-id][data-status='500']", { timeout: T });
  const excerpt = await page.locator("#attempt-rows tr[data-attempt-id] pre").first().innerText();
  await must(excerpt === cfg.bad_body, "the attempt's response excerpt: " + excerpt);
  await must((await page.locator("#attempt-rows tr[data-attempt-id]").count()) === 3,
    "attempts of a failed delivery on a 2-step schedule: " + (await page.locator("#attempt-rows tr[data-attempt-id]").count()));
  await page.waitForSelector("#stats dd", { timeout: T });
  const stats = await text(page, "#stats");
  await must(stats.includes("0% (0 of 3 attempts succeeded)") && stats.includes("answered 500"), "the stats: " + stats);
  await shot(page, "portal-endpoint");
  await axe(page, "the portal with an endpoint open");
  await page.click("#close-detail");
  await page.waitForSelector("#detail", { state: "hidden", timeout: T });
  await shot(page, "portal-list");
  await axe(page, "the portal's endpoint list");
});

await step(page, "acme fixes the URL and retries: delivered", async () => {
  await page.locator(`#endpoint-rows tr[data-endpoint-id="${endpointId}"] button`).click();
  await row(page, deliveryId).waitFor({ timeout: T });
  await page.fill("#edit-url", cfg.good_url);
  await page.click("#edit-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("notice").textContent.startsWith("Saved"), null, { timeout: T });
  await must((await text(page, "#detail-url")) === cfg.good_url, "the open endpoint's URL after the fix");
  await row(page, deliveryId).locator("button.retry").click();
  await page.waitForSelector(`#delivery-rows tr[data-delivery-id="${deliveryId}"][data-state=delivered]`, { timeout: T });
  const cells = await row(page, deliveryId).locator("td").allInnerTexts();
  await must(cells[3] === "200" && cells[4] === "—" && cells[2] === "4", "the delivered row: " + JSON.stringify(cells));
  await row(page, deliveryId).locator("button.attempts").click();
  await page.waitForSelector("#attempt-rows tr[data-attempt-id][data-status='200']", { timeout: T });
  await must((await page.locator("#attempt-rows tr[data-attempt-id]").count()) === 4, "the attempts after the retry");
  await page.waitForSelector(`#endpoint-rows tr[data-endpoint-id="${endpointId}"][data-status=healthy]`, { timeout: T });
  await ask({ step: "delivered", event_id: eventId });
});

await step(page, "a cancelled confirmation changes nothing; rotating shows a new secret once", async () => {
  await page.click("#delete-endpoint");
  await page.waitForSelector("#confirm[open]", { timeout: T });
  await page.click("#confirm-no");
  await page.waitForSelector("#confirm:not([open])", { state: "attached", timeout: T });
  await must(await page.isVisible("#detail"), "cancelling the delete closed the endpoint");
  await page.click("#rotate-secret");
  await page.waitForSelector("#confirm[open]", { timeout: T });
  await must((await text(page, "#confirm-text")).includes("24 hours"), "the rotation's warning: " + (await text(page, "#confirm-text")));
  await page.click("#confirm-yes");
  await page.waitForSelector("#secret-overlap", { state: "visible", timeout: T });
  await must((await text(page, "#secret-overlap")).includes("previous secret keeps signing"), "no word on the overlap");
  const rotated = await takeSecret(page);
  await must(rotated !== created, "the rotated secret is the old one");
  await ask({ step: "rotated", secret: rotated });
});

await step(page, "a test event is delivered", async () => {
  await page.click("#send-test");
  await page.waitForSelector("#test-result[data-state=delivered]", { timeout: T });
  const said = await text(page, "#test-result");
  await must(said.includes("The test event was delivered: your receiver answered 200."), "the test's result: " + said);
});

await step(page, "a replay of the last 10 minutes runs to done", async () => {
  const since = await page.evaluate(() => {
    const d = new Date(Date.now() - 10 * 60e3);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  });
  await page.fill("#replay-since", since);
  await page.click("#replay-form button[type=submit]");
  await page.waitForSelector("#replay-state[data-state=done]", { timeout: T });
  const progress = await page.locator("#replay-progress").evaluate((p) => p.value);
  await must(progress === 1, "the progress at done: " + progress);
  const said = await text(page, "#replay-text");
  await must(said.includes("Replay done") && said.includes("1 for this endpoint, 1 sent again"), "the replay's result: " + said);
  const posted = page.requests.find((r) => r.method === "POST" && r.url.endsWith("/replay"));
  const body = JSON.parse(posted.body);
  await must(body.since === new Date(since).toISOString() && !("until" in body), "the replay's request: " + posted.body);
});

await step(page, "the state filter; then the page is hidden", async () => {
  await page.selectOption("#state-filter", "failed");
  await page.waitForSelector("#delivery-rows tr.empty", { timeout: T });
  await must((await text(page, "#delivery-rows")).includes("No failed delivery."), "the failed filter: " + (await text(page, "#delivery-rows")));
  await page.selectOption("#state-filter", "");
  await row(page, deliveryId).waitFor({ timeout: T });
  await setVisible(page, false);
  await page.waitForSelector("body[data-polling=paused][data-loading=false]", { timeout: T });
});
const hiddenSince = Date.now();
const B = await person("acme again (B)");
await step(B.page, "a hidden page stops polling", async () => {
  // B polls every few seconds: two more of its polls mean a whole poll interval went by, in
  // which A's hidden page, had it kept polling, would have read its endpoint at least once.
  await B.page.goto(base + cfg.links.acme);
  await B.page.waitForSelector(`#endpoint-rows tr[data-endpoint-id="${endpointId}"]`, { timeout: T });
  const bPolls = Number(await B.page.getAttribute("body", "data-polls"));
  await B.page.waitForFunction((n) => Number(document.body.dataset.polls) >= n + 2, bPolls, { timeout: T });
  const reads = page.requests.filter((r) => r.at > hiddenSince && r.url.includes("/v1/")).length;
  await must(reads === 0, `the hidden page kept polling (${reads} reads in ${Date.now() - hiddenSince} ms)`);
  const polls = Number(await page.getAttribute("body", "data-polls"));
  await setVisible(page, true);
  await page.waitForFunction((n) => Number(document.body.dataset.polls) > n, polls, { timeout: T });
});

await step(page, "a reload keeps the session and shows no secret; signing out stays signed out", async () => {
  await page.reload();
  await page.waitForSelector(`#endpoint-rows tr[data-endpoint-id="${endpointId}"]`, { timeout: T });
  await must((await text(page, "#title")) === "Webhooks for acme", "the title after a reload");
  await must(!(await page.isVisible("#secret-box")), "a secret is shown after a reload");
  await must(!(await page.content()).includes(cfg.globex_url), "globex's endpoint is in acme's page");
  await page.click("#sign-out");
  await page.waitForSelector("#refused", { state: "visible", timeout: T });
  await page.reload();
  await page.waitForSelector("#refused", { state: "visible", timeout: T });
  await must(!(await page.isVisible("#endpoints")), "a reload after signing out shows the endpoints");
});

// ---- expired and revoked links ------------------------------------------------------------------------
for (const which of ["expired", "revoked"]) {
  const X = await person(which + " link");
  await step(X.page, `the ${which} link`, async () => {
    await X.page.goto(base + cfg.links[which]);
    await X.page.waitForSelector("#refused", { state: "visible", timeout: T });
    const n = await text(X.page, "#notice");
    await must(n.includes("This link has expired or was revoked: ask for a new one."), `the ${which} link's page says: ${n}`);
    await must(!X.page.url().includes("hrldl_"), "the credential is still in the address bar");
    await must(!(await X.page.isVisible("#endpoints")), "the endpoints are shown for an " + which + " link");
    if (which === "expired") {
      await shot(X.page, "portal-refused");
      await axe(X.page, "the refused page");
    }
  });
}

for (const p of pages) {
  await step(p, `${p.person}'s page had no error and sent no token`, async () => {
    await must(!p.errors.length, `errors in ${p.person}'s page: ${p.errors.join("; ")}`);
    const sent = p.requests.filter((r) => r.auth);
    await must(!sent.length, `${p.person}'s page sent an Authorization header: ${sent.map((r) => r.url).join(", ")}`);
  });
}
await browser.close();
console.log("portal: acme added an endpoint, saw the event fail with 500 and its body, fixed the URL, retried it to delivered, " +
  "rotated the secret, sent a test, replayed; globex's endpoint never shown; expired and revoked links refused; " +
  "axe-core: no serious violation");
process.exit(0);
