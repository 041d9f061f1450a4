// The dashboard in a real browser: Debian's chromium driven by playwright-core.
//   DASHBOARD_URL SMTP_HOST SMTP_PORT SMTP_API_KEY MAIL_FROM MAIL_TO [CHROMIUM] [SCREENSHOTS]
// Logs in with the key, sends a message over SMTP (Nodemailer, STARTTLS),
// watches it reach "delivered" in the list without a reload, opens its
// timeline (the delivery's remote host and reply) and sandboxed preview,
// checks the domain's records, creates and revokes a key, adds a webhook and
// deletes it, suppresses an address and removes it, saves the tracking
// settings, draws the analytics chart, creates a template, sends it to a
// segment and follows the batch and the contacts' history, and logs out.
// Each address mailed besides MAIL_TO is printed as "mailed <address>". Prints "ok <step>"
// per step; exits 1 at the first failure, or on any console error (a CSP
// violation is one) or uncaught page error.
import { chromium } from "playwright-core";
import nodemailer from "nodemailer";
import { mkdirSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";

const env = process.env;
const base = env.DASHBOARD_URL;
const shots = env.SCREENSHOTS || "";
const subject = "Dashboard e2e " + Date.now();
const remoteImage = "https://images.remote.test/logo.png";
const timeout = 30_000;

const problems = [];
const step = (name) => console.log("ok   " + name);

// A webhook receiver on loopback: 204 to every POST.
let received = 0;
const receiver = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => { received++; res.writeHead(204); res.end(); });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const receiverURL = "http://127.0.0.1:" + receiver.address().port + "/dashboard-hooks";

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  chromiumSandbox: process.getuid() !== 0, // chromium refuses its sandbox as root
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  // The preview's own refusals (its script, its remote image before the
  // click) are the point of the sandbox, not problems of the page.
  const previewRefusals = [];
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const fromPreview = m.location().url === "about:srcdoc" || m.text().includes("'about:srcdoc'") ||
      (m.text().includes(remoteImage) && m.text().includes("Content Security Policy"));
    (fromPreview ? previewRefusals : problems).push("console: " + m.text());
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  // Nothing leaves loopback: remote images are answered here, and counted;
  // the open pixel (at http.public_url, a name of the test's) goes to the
  // gateway.
  let remoteHits = 0;
  await context.route(/^https?:\/\/(?!127\.0\.0\.1)/, async (route) => {
    const u = new URL(route.request().url());
    if (u.pathname.startsWith("/v1/track/open/")) {
      return route.fulfill({ response: await route.fetch({ url: base + u.pathname + u.search }) });
    }
    if (route.request().url() === remoteImage) {
      remoteHits++;
      return route.fulfill({ status: 200, contentType: "image/png", body: Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082", "hex") });
    }
    return route.abort();
  });

  // Log in.
  await page.goto(base + "/");
  await page.getByLabel("API key").fill(env.SMTP_API_KEY);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Emails" }).waitFor();
  const cookies = await context.cookies();
  const c = cookies.find((x) => x.name.endsWith("pp_session"));
  if (!c || !c.httpOnly || c.sameSite !== "Strict") throw new Error("session cookie " + JSON.stringify(c));
  await page.evaluate(() => { window.__noReload = true; });
  step("log in with the key: the emails list, an HttpOnly SameSite=Strict cookie");

  // Send over SMTP; the list must show it delivered without a reload.
  const transport = nodemailer.createTransport({
    host: env.SMTP_HOST, port: Number(env.SMTP_PORT), secure: false,
    auth: { user: "apikey", pass: env.SMTP_API_KEY }, tls: { rejectUnauthorized: false },
  });
  const info = await transport.sendMail({
    from: env.MAIL_FROM, to: env.MAIL_TO, subject,
    headers: { "X-SP-Track-Opens": "true" }, // the preview's remote images include the open pixel
    text: "Hello from the text part",
    html: '<html><body><h1 id="greeting">Hello from the dashboard test</h1>' +
      '<img id="logo" src="' + remoteImage + '" alt="logo">' +
      "<script>document.body.insertAdjacentHTML('beforeend', '<p id=\"pwned\">script ran</p>')</script></body></html>",
  });
  step("send over SMTP: " + info.response);
  const row = page.locator("tr", { hasText: subject });
  await row.waitFor();
  await row.locator('span[data-status="delivered"]').waitFor();
  if (!(await page.evaluate(() => window.__noReload === true))) throw new Error("the page reloaded");
  step("the list shows it, then delivered, without a reload");

  // Its timeline and content.
  await row.getByRole("link", { name: subject }).click();
  await page.getByRole("heading", { name: subject }).waitFor();
  const delivered = page.locator('ol.timeline li[data-type="delivered"]');
  await delivered.waitFor();
  const mx = (await delivered.locator('[data-field="mx"]').textContent()).trim();
  const reply = (await delivered.locator('[data-field="response"]').textContent()).trim();
  if (mx !== "mx." + env.MAIL_TO.split("@")[1]) throw new Error("the delivered event names the host " + JSON.stringify(mx));
  if (!/^250 /.test(reply)) throw new Error("the delivered event's reply is " + JSON.stringify(reply));
  step("the timeline: delivered to " + mx + ": " + reply);
  const iframe = page.locator("iframe.preview");
  await iframe.waitFor();
  if ((await iframe.getAttribute("sandbox")) !== "") throw new Error('the preview iframe is not sandbox=""');
  const frame = page.frameLocator("iframe.preview");
  await frame.locator("#greeting").waitFor();
  if ((await frame.locator("#pwned").count()) !== 0) throw new Error("a script in the email ran in the preview");
  if (remoteHits !== 0) throw new Error("the preview loaded a remote image before the click");
  step("the HTML in a sandboxed iframe, its script not run, no remote image loaded");
  if (shots) { mkdirSync(shots, { recursive: true }); await page.screenshot({ path: join(shots, "dashboard-email.png"), fullPage: true }); }
  const imageLoaded = page.waitForResponse(remoteImage);
  await page.getByRole("button", { name: "Load remote images" }).click();
  await imageLoaded;
  if (remoteHits === 0) throw new Error("the remote image did not load after the click");
  await frame.locator("#logo").evaluate((img) => img.complete && img.naturalWidth > 0 || Promise.reject(new Error("not rendered")));
  step("a click loads the remote image (the preview refused " + previewRefusals.length + " things before: its script, the images)");
  // That click fetched the open pixel too: the timeline, still polling a
  // delivered email, shows the open with its classification.
  const hit = page.locator('ol.timeline li[data-type="opened"] [data-hit]').first();
  await hit.waitFor();
  const kind = await hit.getAttribute("data-hit");
  if (!["person", "bot", "machine", "proxied"].includes(kind)) throw new Error("the open is classified " + JSON.stringify(kind));
  if (shots) await page.locator("ol.timeline").screenshot({ path: join(shots, "dashboard-timeline.png") });
  step("the timeline shows the open the preview made, classified: " + (await hit.textContent()).trim());
  await page.getByRole("tab", { name: "Text" }).click();
  await page.locator('pre[aria-label="Text part"]').filter({ hasText: "Hello from the text part" }).waitFor();
  await page.getByRole("tab", { name: "Raw MIME" }).click();
  await page.locator('pre[aria-label="Raw MIME"]').filter({ hasText: "Subject: " + subject }).waitFor();
  step("the text part and the raw MIME");

  // Domains.
  await page.getByRole("link", { name: "Domains" }).click();
  const domain = page.locator("section.card", { hasText: env.MAIL_FROM.split("@")[1] });
  await domain.waitFor();
  const records = await domain.locator("tbody tr").count();
  if (records < 2) throw new Error("the domain shows " + records + " DNS records");
  await domain.getByRole("button", { name: "Verify now" }).click();
  await domain.getByText(/^Checked /).waitFor();
  await domain.locator("header [data-status=verified]").waitFor();
  step("domains: " + records + " records with copy buttons, verify now: verified");

  // Keys: create, then revoke.
  await page.getByRole("link", { name: "API keys" }).click();
  await page.getByRole("heading", { name: "API keys", exact: true }).waitFor(); // the domains view had a "Name" too
  await page.getByLabel("Name").fill("dashboard e2e");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = (await page.locator("#new-key").textContent()).trim();
  if (!/^sp_live_/.test(secret)) throw new Error("the new key is shown as " + JSON.stringify(secret));
  const keyRow = page.locator("tr", { hasText: "dashboard e2e" });
  await keyRow.waitFor();
  page.once("dialog", (d) => d.accept());
  await keyRow.getByRole("button", { name: "Revoke key dashboard e2e" }).click();
  await keyRow.waitFor({ state: "detached" });
  step("API keys: created (shown once), revoked");

  // Webhooks: add an endpoint (on an event this run never fires), see it
  // listed with its secret shown once, delete it.
  const hookURL = "http://127.0.0.1:9/dashboard-e2e-" + Date.now();
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.getByRole("heading", { name: "Webhooks", exact: true }).waitFor();
  await page.getByLabel("Endpoint URL").fill(hookURL);
  for (const ev of ["email.delivered", "email.bounced"]) await page.getByLabel(ev, { exact: true }).uncheck();
  await page.getByLabel("account.paused", { exact: true }).check();
  await page.getByRole("button", { name: "Add webhook" }).click();
  const hookSecret = (await page.locator("#new-secret").textContent()).trim();
  if (!hookSecret) throw new Error("the new webhook's secret is not shown");
  const hookRow = page.locator("tr", { hasText: hookURL });
  await hookRow.waitFor();
  const hookEvents = (await hookRow.locator("td").nth(1).textContent()).trim();
  if (hookEvents !== "account.paused") throw new Error("the webhook is listed with the events " + JSON.stringify(hookEvents));
  await page.getByRole("heading", { name: "Deliveries given up" }).waitFor();
  if (shots) await page.screenshot({ path: join(shots, "dashboard-webhooks.png"), fullPage: true });
  page.once("dialog", (d) => d.accept());
  await hookRow.getByRole("button", { name: "Delete webhook " + hookURL }).click();
  await hookRow.waitFor({ state: "detached" });
  step("webhooks: added (listed, secret shown once), deleted");

  // Suppressions: add an address, find it with the search, remove it.
  const suppressed = "dashboard-e2e-" + Date.now() + "@" + env.MAIL_TO.split("@")[1];
  await page.getByRole("link", { name: "Suppressions" }).click();
  await page.getByRole("heading", { name: "Suppressions", exact: true }).waitFor();
  await page.getByLabel("Address", { exact: true }).fill(suppressed);
  await page.getByLabel("Reason", { exact: true }).fill("dashboard e2e");
  await page.getByRole("button", { name: "Suppress", exact: true }).click();
  const supRow = page.locator("tr", { hasText: suppressed });
  await supRow.waitFor();
  await page.getByLabel("Search", { exact: true }).fill("no-such-address");
  await supRow.waitFor({ state: "hidden" });
  await page.getByLabel("Search", { exact: true }).fill(suppressed.slice(0, 20));
  await supRow.waitFor({ state: "visible" });
  await page.locator("#s-shown", { hasText: /^1 found address\.$/ }).waitFor(); // the API's search (?q=), not the page's
  if (shots) await page.screenshot({ path: join(shots, "dashboard-suppressions.png"), fullPage: true });
  page.once("dialog", (d) => d.accept());
  await supRow.getByRole("button", { name: "Remove " + suppressed }).click();
  await supRow.waitFor({ state: "detached" });
  const gone = await page.evaluate(async (addr) => {
    const s = await (await fetch("/dashboard/session")).json();
    const res = await fetch("/v1/suppressions?limit=1000", { headers: { "X-CSRF-Token": s.csrfToken } });
    return !(await res.json()).data.some((x) => x.email === addr);
  }, suppressed);
  if (!gone) throw new Error("the API still lists " + suppressed + " as suppressed");
  step("suppressions: added, found by the search, removed (the API agrees)");

  // Tracking settings: read, saved as they are.
  await page.getByRole("link", { name: "Tracking" }).click();
  await page.getByRole("heading", { name: "Tracking settings", exact: true }).waitFor();
  await page.getByLabel("Open pixel placement").waitFor();
  const trackingOn = await page.getByLabel("Tracking on").isChecked();
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText(/^Saved /).waitFor();
  step("tracking settings: read (tracking " + (trackingOn ? "on" : "off") + "), saved");

  // Analytics: the chart draws the day's sends.
  await page.getByRole("link", { name: "Analytics" }).click();
  const canvas = page.locator("#chart canvas");
  await canvas.waitFor();
  const painted = await canvas.evaluate((cv) => {
    const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
    return n;
  });
  if (painted === 0) throw new Error("the chart's canvas is blank");
  const sent = await page.locator(".stat", { hasText: "Sent" }).first().locator("b").textContent();
  if (Number(sent) < 1) throw new Error("analytics shows " + sent + " sent");
  if (shots) await page.screenshot({ path: join(shots, "dashboard-analytics.png"), fullPage: true });
  step("analytics: " + sent + " sent, the chart paints " + painted + " pixels");

  // Templates: create one in the form; it is listed with its variables.
  const tplName = "dashboard e2e " + Date.now();
  await page.getByRole("link", { name: "Templates" }).click();
  await page.getByRole("heading", { name: "Templates", exact: true }).waitFor();
  await page.getByLabel("Name", { exact: true }).fill(tplName);
  await page.getByLabel("Subject", { exact: true }).fill("Hello {{first_name}}");
  await page.getByLabel("HTML", { exact: true }).fill("<p>Hello {{first_name}}, from the dashboard test</p>");
  await page.getByRole("button", { name: "Create template" }).click();
  const tplRow = page.locator("tr", { hasText: tplName });
  await tplRow.waitFor();
  const tplId = (await tplRow.locator("td .mono").first().textContent()).trim();
  const vars = (await tplRow.locator("td").nth(2).textContent()).trim();
  if (!vars.includes("first_name")) throw new Error("the template is listed with the variables " + JSON.stringify(vars));
  step("templates: created in the form, listed with its variables (" + vars + ")");

  // Contacts and a segment through the API (the dashboard's session), a
  // send of the template to the segment: a batch of two.
  const tag = "dash" + Date.now();
  const rcptDomain = env.MAIL_TO.split("@")[1];
  const people = [["ada", "Ada"], ["grace", "Grace"]].map(([local, first]) => ({ email: "dashboard-" + local + "-" + tag + "@" + rcptDomain, firstName: first }));
  const made = await page.evaluate(async ({ people, tag, tplId, from, hookURL }) => {
    const s = await (await fetch("/dashboard/session")).json();
    const call = async (method, path, body) => {
      const res = await fetch(path, { method, headers: { "X-CSRF-Token": s.csrfToken, "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const out = await res.json();
      if (!res.ok) throw new Error(method + " " + path + ": " + res.status + " " + JSON.stringify(out));
      return out;
    };
    const hook = await call("POST", "/v1/webhooks", { url: hookURL, events: ["email.delivered"] });
    const contacts = [];
    for (const p of people) contacts.push(await call("POST", "/v1/contacts", { ...p, tags: [tag] }));
    const segment = await call("POST", "/v1/segments", { name: "dashboard " + tag, filter: { tags: [tag] } });
    const sent = await call("POST", "/v1/sends", { templateId: tplId, from, segmentId: segment.id });
    return { hook, contacts, segment, sent };
  }, { people, tag, tplId, from: env.MAIL_FROM, hookURL: receiverURL });
  if (made.sent.count !== 2) throw new Error("the segment send counted " + made.sent.count + " contacts");
  for (const p of people) console.log("mailed " + p.email); // the driver expects them at the sink
  step("a webhook on email.delivered, two contacts, a segment and a send to it through the API: batch " + made.sent.batchId);

  // Sends: the account's state and usage, the batch counted by status
  // until both are delivered, without a reload.
  await page.getByRole("link", { name: "Sends" }).click();
  await page.getByRole("heading", { name: "Sends", exact: true }).waitFor();
  await page.locator('#account-facts [data-field="pause"] [data-status="active"]').waitFor();
  const usage = (await page.locator('#account-facts [data-field="usage"]').textContent()).trim();
  if (!/^\d+ /.test(usage) || Number(usage.split(" ")[0]) < 3) throw new Error("the usage reads " + JSON.stringify(usage));
  const batchRow = page.locator('#batches tr[data-id="' + made.sent.batchId + '"]');
  await batchRow.locator('[data-count="delivered"]', { hasText: "delivered 2" }).waitFor();
  const sendRows = await page.locator("#sends-body tr").count();
  if (sendRows < 2) throw new Error("the sends list shows " + sendRows + " rows");
  if (shots) await page.screenshot({ path: join(shots, "dashboard-sends.png"), fullPage: true });
  step("sends: account active, usage " + JSON.stringify(usage) + ", the batch reaches delivered 2 live, " + sendRows + " sends listed");

  // Contacts: filtered by the tag, one opened with its history; the
  // segment counted.
  await page.getByRole("link", { name: "Contacts" }).click();
  await page.getByRole("heading", { name: "Contacts", exact: true }).waitFor();
  await page.getByLabel("Tag", { exact: true }).fill(tag);
  await page.getByRole("button", { name: "Filter", exact: true }).click();
  await page.locator("#contacts-shown", { hasText: "2 contacts shown" }).waitFor();
  const segRow = page.locator('#segments tr[data-id="' + made.segment.id + '"]');
  await segRow.getByRole("button", { name: "Count the contacts of dashboard " + tag }).click();
  await segRow.locator('[data-field="count"]', { hasText: /^2$/ }).waitFor();
  if (shots) await page.screenshot({ path: join(shots, "dashboard-contacts.png"), fullPage: true });
  await page.getByRole("link", { name: people[0].email }).click();
  await page.getByRole("heading", { name: people[0].email }).waitFor();
  await page.locator("#history-body tr", { hasText: "Hello Ada" }).locator('[data-status="delivered"]').waitFor();
  step("contacts: filtered by tag (2), the segment counts 2, a contact's history shows its delivered send");

  // Webhooks: the endpoint's recent deliveries (the two sends'), each
  // with its status and latency; one redelivered.
  await page.getByRole("link", { name: "Webhooks" }).click();
  const recvRow = page.locator("tr", { hasText: receiverURL }).first();
  await recvRow.getByRole("button", { name: "Recent deliveries to " + receiverURL }).click();
  const attempts = page.locator("#attempts-" + made.hook.id + ' tr[data-outcome="delivered"]');
  await attempts.nth(1).waitFor();
  const response = (await attempts.first().locator('[data-field="response"]').textContent()).trim();
  if (response !== "HTTP 204 No Content") throw new Error("the delivery's response reads " + JSON.stringify(response));
  const firstID = await attempts.first().getAttribute("data-delivery");
  await attempts.first().getByRole("button", { name: "Redeliver " + firstID }).click();
  await attempts.first().getByRole("status").filter({ hasText: "queued" }).waitFor();
  if (shots) await page.screenshot({ path: join(shots, "dashboard-webhook-deliveries.png"), fullPage: true });
  step("webhooks: " + (await attempts.count()) + " recent deliveries (" + response + "), one redelivered; the receiver got " + received + " so far");

  // A phone's width: nothing wider than the screen but the tables' own
  // scrolling boxes.
  await page.setViewportSize({ width: 360, height: 780 });
  for (const [view, heading] of [["#/emails", "Emails"], ["#/domains", "Domains"], ["#/keys", "API keys"], ["#/webhooks", "Webhooks"],
    ["#/suppressions", "Suppressions"], ["#/tracking", "Tracking settings"], ["#/analytics", "Analytics"], ["#/sends", "Sends"],
    ["#/contacts", "Contacts"], ["#/templates", "Templates"]]) {
    await page.evaluate((h) => { location.hash = h; }, view);
    await page.getByRole("heading", { name: heading, exact: true }).waitFor();
    // Every section has loaded (the webhooks view has two).
    await page.waitForFunction(() => ![...document.querySelectorAll("main p.muted")].some((p) => p.textContent.includes("Loading")));
    const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    if (scroll > client) throw new Error(view + " at 360 px is " + scroll + " px wide");
  }
  if (shots) await page.screenshot({ path: join(shots, "dashboard-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  step("a phone's width (360 px): no view is wider than the screen");

  // Log out.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Log in to pigeonpost" }).waitFor();
  await context.addCookies([c]); // the logged-out session's cookie, replayed
  const after = await context.request.get(base + "/v1/emails", { headers: { "X-CSRF-Token": "x" } });
  if (after.status() !== 401) throw new Error("the REST API after logout: " + after.status());
  step("log out: the login form, the cookie no longer works");

  if (problems.length) throw new Error("the page reported:\n" + problems.join("\n"));
  step("no console error, no page error");
} catch (err) {
  failed = true;
  console.error("error: " + err.message + (problems.length ? "\n" + problems.join("\n") : ""));
} finally {
  await browser.close();
  receiver.close();
}
process.exitCode = failed ? 1 : 0;
