// What the page tests (inbox.mjs, portal.mjs) share: Debian's Chromium driven by playwright-core,
// one browser context per person recording what goes wrong in its page, failing with a
// screenshot, axe-core, and a page made hidden or shown as a switched tab would be.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** A browser for the test `name`; a failure's screenshot goes to `${shots}/${name}-failure.png`. */
export async function harness(name, shots) {
  const browser = await chromium.launch({
    executablePath: process.env.HERALD_CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const pages = [];
  let current = null;

  async function fail(why) {
    if (current) await current.screenshot({ path: `${shots}/${name}-failure.png`, fullPage: true }).catch(() => {});
    console.error("FAILED: " + why);
    await browser.close();
    process.exit(1);
  }
  async function must(cond, why) { if (!cond) await fail(why); }

  /** Runs one step of the story on `page` (the one a failure screenshots). */
  async function step(page, what, fn) {
    current = page;
    console.log("step: " + what);
    try { await fn(); } catch (e) { await fail(what + ": " + (e && e.message ? e.message : e)); }
  }

  /** A browser context of its own (its own cookies: another person), recording its page's
   *  errors and requests. */
  async function person(who, contextOptions) {
    const context = await browser.newContext(contextOptions || {});
    const page = await context.newPage();
    page.person = who;
    page.errors = [];
    page.requests = [];
    page.on("pageerror", (e) => page.errors.push(String(e)));
    // Chromium logs each 4xx a fetch gets ("Failed to load resource"): those the page expects
    // (401 from an ended session, 404, 409) are not errors of the page.
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) page.errors.push(m.text());
    });
    page.on("request", (r) => page.requests.push({
      at: Date.now(), method: r.method(), url: r.url(), auth: r.headers()["authorization"], body: r.postData(),
    }));
    pages.push(page);
    return { context, page };
  }

  /** axe-core in `page`: no serious or critical violation. */
  async function axe(page, where) {
    await page.evaluate(axeSource);
    const found = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
    });
    const serious = found.filter((v) => v.impact === "serious" || v.impact === "critical");
    await must(!serious.length, `axe-core on ${where}: ${JSON.stringify(serious)}`);
    console.log(`axe-core on ${where}: ${found.length ? JSON.stringify(found) : "no violation"}`);
  }

  /** Makes the page hidden or shown, as switching tabs does. */
  async function setVisible(page, visible) {
    await page.evaluate((v) => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (v ? "visible" : "hidden") });
      Object.defineProperty(document, "hidden", { configurable: true, get: () => !v });
      document.dispatchEvent(new Event("visibilitychange"));
    }, visible);
  }

  return { browser, pages, fail, must, step, person, axe, setVisible };
}
