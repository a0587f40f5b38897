// Opens Herald's /inbox in headless Chromium as a person would: signs in with the tenant token,
// rejects one approval with a comment, approves another, answers a question, and checks that
// each disappears from the list. Usage: node inbox.mjs BASE_URL TOKEN SCREENSHOT_DIR
import { chromium } from "playwright-core";

const [base, token, shots] = process.argv.slice(2);
const executablePath = process.env.HERALD_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const fail = async (page, why) => {
  await page.screenshot({ path: `${shots}/inbox-failure.png`, fullPage: true }).catch(() => {});
  console.error(why);
  await browser.close();
  process.exit(1);
};
const page = await browser.newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

await page.goto(`${base}/inbox`);
await page.fill("#token", token);
await page.click("#sign-in button[type=submit]");
await page.waitForSelector('li[data-call-id="deploy_1"]', { timeout: 15000 });
await page.waitForSelector('li[data-call-id="email_1"]');
await page.waitForSelector('li[data-call-id="question_1"]');
await page.screenshot({ path: `${shots}/inbox.png`, fullPage: true });
if (await page.isVisible("#sign-in")) await fail(page, "the sign-in form is still shown after signing in");
if ((await page.locator("script").count()) !== 1) await fail(page, "a value from the API was rendered as HTML");

// A rejection needs a comment: the page says so and sends nothing without one.
const deploy = page.locator('li[data-call-id="deploy_1"]');
await deploy.locator("button.reject").click();
if (!(await page.textContent("#notice")).includes("comment")) await fail(page, "rejecting without a comment was not refused");
await deploy.locator("textarea").fill("Not on a Friday.");
await deploy.locator("button.reject").click();
await page.waitForSelector('li[data-call-id="deploy_1"]', { state: "detached", timeout: 15000 });

await page.locator('li[data-call-id="email_1"] button.approve').click();
await page.waitForSelector('li[data-call-id="email_1"]', { state: "detached", timeout: 15000 });

const q = page.locator('li[data-call-id="question_1"]');
await q.locator("textarea").fill("eu-west-1, please");
await q.locator("button.answer").click();
await page.waitForSelector('li[data-call-id="question_1"]', { state: "detached", timeout: 15000 });
const empty = await page.locator("#approvals .empty").count();
if (empty !== 1) await fail(page, "the approvals list should be empty now");
await page.screenshot({ path: `${shots}/inbox-done.png`, fullPage: true });
if (errors.length) await fail(page, "errors in the page: " + errors.join("; "));
await browser.close();
console.log("inbox: rejected deploy_1, approved email_1, answered question_1");
