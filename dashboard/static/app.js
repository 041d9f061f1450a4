// The dashboard: one page, routed by the URL's fragment (#/emails,
// #/emails/ID, #/domains, #/keys, #/webhooks, #/suppressions, #/tracking,
// #/analytics, #/sends, #/contacts, #/contacts/ID, #/templates). It calls the /v1 REST API
// with the session cookie and the session's CSRF token in X-CSRF-Token;
// every value from the API goes into the page as text, never as markup.
import { bytesToBinary, textParts } from "./mime.js";

const pollMs = 5000;
const statuses = ["scheduled", "cancelled", "pending", "sent", "delivered", "bounced", "complained", "failed", "suppressed"];
// An email in one of these states gets no more events: its timeline stops
// polling. A delivered one still gets opens, clicks and complaints.
const quietStatuses = new Set(["cancelled", "bounced", "failed", "suppressed"]);

let session = null; // {csrfToken, keyId, keyName, mode, expiresAt}
let cleanup = () => {};

const main = document.getElementById("main");

// ---- DOM ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function fmtTime(s) {
  if (!s) return "—";
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString();
}

function statusChip(s) {
  return h("span", { class: "status status-" + s, "data-status": s }, s);
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err.message || String(err));
}

function copyButton(text, label) {
  const b = h("button", { type: "button", "aria-label": label }, "Copy");
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = "Copied";
    } catch {
      b.textContent = "Copy failed";
    }
    setTimeout(() => { b.textContent = "Copy"; }, 1500);
  });
  return b;
}

// ---- API ----

class SessionEnded extends Error {}

async function api(path, opts = {}) {
  const headers = { "X-CSRF-Token": session ? session.csrfToken : "" };
  let body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(path, { method: opts.method || "GET", headers, body, credentials: "same-origin", cache: "no-store" });
  if (res.status === 401) {
    session = null;
    renderLogin("Your session has ended: log in again.");
    throw new SessionEnded("session ended");
  }
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { msg = (await res.json()).error.message; } catch { /* not JSON */ }
    throw new Error(msg);
  }
  if (opts.binary) return res.arrayBuffer();
  if (res.status === 204) return null;
  return res.json();
}

// ---- login ----

async function loadSession() {
  const res = await fetch("/dashboard/session", { credentials: "same-origin", cache: "no-store" });
  if (res.status === 204) return null;
  if (!res.ok) throw new Error("the dashboard cannot reach the server (" + res.status + ")");
  return res.json();
}

function renderLogin(message) {
  cleanup();
  cleanup = () => {};
  document.getElementById("top").hidden = true;
  const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const msg = h("p", { id: "login-error", class: "error", role: "alert" }, message || "");
  const form = h("form", { "aria-describedby": "login-help" },
    h("label", { for: "key" }, "API key", input),
    h("p", { id: "login-help", class: "muted" }, "A key with full permission (sp_live_… or sp_test_…). Sending-only keys cannot open the dashboard."),
    h("button", { type: "submit", class: "primary" }, "Log in"),
    msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    msg.textContent = "";
    const res = await fetch("/dashboard/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ key: input.value }),
    });
    if (!res.ok) {
      let text = "Log in failed (" + res.status + ")";
      try { text = (await res.json()).error.message; } catch { /* not JSON */ }
      msg.textContent = text;
      input.focus();
      return;
    }
    input.value = "";
    // The cookie is Secure when http.public_url is https://: a browser on
    // a plain-HTTP address drops it, and the login would not stick.
    session = await loadSession();
    if (!session) {
      msg.textContent = "The key is right, but the browser did not keep the session cookie. It is Secure because " +
        "the server's public URL is https://: open the dashboard at that address.";
      return;
    }
    started();
  });
  show(h("section", { class: "login" }, h("h1", {}, "Log in to pigeonpost"), form));
  input.focus();
}

async function logout() {
  try {
    await fetch("/dashboard/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": session ? session.csrfToken : "" } });
  } finally {
    session = null;
    renderLogin("You are logged out.");
  }
}

function started() {
  document.getElementById("top").hidden = false;
  document.getElementById("who").textContent = session.keyName + " (" + session.mode + ")";
  if (!location.hash || location.hash === "#" || location.hash === "#/") location.hash = "#/emails";
  else route();
}

// ---- routing ----

const routes = [
  [/^#\/emails\/([A-Za-z0-9_-]+)$/, emailView],
  [/^#\/emails$/, emailsView],
  [/^#\/domains$/, domainsView],
  [/^#\/keys$/, keysView],
  [/^#\/webhooks$/, webhooksView],
  [/^#\/suppressions$/, suppressionsView],
  [/^#\/tracking$/, trackingView],
  [/^#\/analytics$/, analyticsView],
  [/^#\/sends$/, sendsView],
  [/^#\/contacts\/([A-Za-z0-9_-]+)$/, contactView],
  [/^#\/contacts$/, contactsView],
  [/^#\/templates$/, templatesView],
];

function route() {
  if (!session) return;
  cleanup();
  cleanup = () => {};
  const [path, query] = location.hash.split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll(".top nav a")) {
    if (path.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const [re, view] of routes) {
    const m = re.exec(path);
    if (m) {
      const stop = view(params, ...m.slice(1));
      if (typeof stop === "function") cleanup = stop;
      main.focus({ preventScroll: true });
      return;
    }
  }
  show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/emails" }, "Go to emails")));
}

// poll calls fn now and every pollMs while the page is visible, until
// the returned stop is called.
function poll(fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try { await fn(); } catch (e) { if (e instanceof SessionEnded) { stopped = true; return; } }
    }
    if (!stopped) timer = setTimeout(tick, pollMs);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

// ---- emails ----

function emailsView(params) {
  const q = new URLSearchParams();
  for (const k of ["status", "to", "tag", "since", "until"]) if (params.get(k)) q.set(k, params.get(k));
  const local = (iso) => {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return "";
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  };
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter emails" },
    h("label", { for: "f-status" }, "Status",
      h("select", { id: "f-status", name: "status" }, h("option", { value: "" }, "Any"),
        statuses.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)))),
    h("label", { for: "f-to" }, "To", h("input", { id: "f-to", name: "to", type: "email", value: params.get("to") || "" })),
    h("label", { for: "f-tag" }, "Tag", h("input", { id: "f-tag", name: "tag", value: params.get("tag") || "" })),
    h("label", { for: "f-since" }, "From", h("input", { id: "f-since", name: "since", type: "datetime-local", value: local(params.get("since")) })),
    h("label", { for: "f-until" }, "Until", h("input", { id: "f-until", name: "until", type: "datetime-local", value: local(params.get("until")) })),
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("button", { type: "button", onclick: () => { location.hash = "#/emails"; } }, "Clear"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const next = new URLSearchParams();
    for (const [k, v] of f) {
      if (!v) continue;
      next.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
    }
    location.hash = "#/emails" + (next.toString() ? "?" + next : "");
  });

  const tbody = h("tbody", { id: "emails-body" });
  const live = h("p", { class: "muted", id: "emails-live" }, "Loading…");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const table = h("div", { class: "table-wrap" }, h("table", { "aria-describedby": "emails-live" },
    h("caption", { class: "sr-only" }, "Emails, newest first"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Created"), h("th", { scope: "col" }, "To"),
      h("th", { scope: "col" }, "Subject"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "opt" }, "Attempts"))),
    tbody));
  show(h("h1", {}, "Emails"), form, live, table, more);

  const rows = new Map();
  const rowFor = (e) => {
    let r = rows.get(e.id);
    if (!r) {
      r = { tr: h("tr", { "data-id": e.id }), status: h("td"), attempts: h("td", { class: "opt" }) };
      r.tr.append(h("td", {}, fmtTime(e.createdAt)), h("td", { class: "mono" }, e.toAddress),
        h("td", {}, h("a", { href: "#/emails/" + e.id }, e.subject || "(no subject)"), e.testMode ? h("span", { class: "status" }, " test") : null),
        r.status, r.attempts);
      rows.set(e.id, r);
    }
    if (r.status.dataset.status !== e.status) {
      r.status.dataset.status = e.status;
      r.status.replaceChildren(statusChip(e.status));
    }
    r.attempts.textContent = String(e.attempts);
    return r;
  };
  let cursor = null;
  const page = async (after) => {
    const p = new URLSearchParams(q);
    p.set("limit", "50");
    if (after) p.set("cursor", after);
    return api("/v1/emails?" + p);
  };
  more.addEventListener("click", async () => {
    const res = await page(cursor);
    for (const e of res.data) tbody.append(rowFor(e).tr);
    cursor = res.nextCursor;
    more.hidden = !res.hasMore;
  });
  let first = true;
  return poll(async () => {
    try {
      const res = await page(null);
      // Newest first: new rows go on top, known rows change in place, so
      // focus and scroll stay where they are.
      let anchor = tbody.firstChild;
      for (const e of res.data) {
        const known = rows.has(e.id);
        const r = rowFor(e);
        if (!known) tbody.insertBefore(r.tr, anchor);
        else anchor = r.tr.nextSibling;
      }
      if (first) { cursor = res.nextCursor; more.hidden = !res.hasMore; first = false; }
      live.textContent = rows.size === 0 ? "No emails match." : "Live: updated " + new Date().toLocaleTimeString();
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      live.replaceChildren(errorBox(e));
    }
  });
}

function emailView(_params, id) {
  const facts = h("dl", { class: "facts" });
  const timeline = h("ol", { class: "timeline", "aria-label": "Events, oldest first" });
  const content = h("section", { "aria-labelledby": "content-h" }, h("h2", { id: "content-h" }, "Content"), h("p", { class: "muted" }, "Loading…"));
  const title = h("h1", {}, "Email");
  show(h("p", {}, h("a", { href: "#/emails" }, "← Emails")), title, facts,
    h("h2", {}, "Timeline"), timeline, content);

  const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  const render = (e, events) => {
    title.textContent = e.subject || "(no subject)";
    facts.replaceChildren(
      ...fact("Status", statusChip(e.status)),
      ...fact("ID", h("span", { class: "mono" }, e.id)),
      ...fact("From", e.fromAddress), ...fact("To", e.toAddress),
      ...fact("Message-ID", h("span", { class: "mono" }, e.messageId || "—")),
      ...fact("Tags", (e.tags || []).join(", ") || "—"),
      ...fact("Test mode", e.testMode ? "yes" : "no"),
      ...fact("Attempts", String(e.attempts)),
      ...(e.lastError ? fact("Last error", h("span", { class: "mono" }, e.lastError)) : []),
      ...fact("Created", fmtTime(e.createdAt)), ...fact("Sent", fmtTime(e.sentAt)),
      ...fact("Delivered", fmtTime(e.deliveredAt)), ...fact("Opened", fmtTime(e.openedAt)), ...fact("Clicked", fmtTime(e.clickedAt)));
    timeline.replaceChildren(...(events.length ? events.map(timelineItem) : [h("li", {}, "No events yet.")]));
  };

  let contentLoaded = false;
  let stopped = false;
  const stop = poll(async () => {
    try {
      const [e, ev] = await Promise.all([api("/v1/emails/" + encodeURIComponent(id)), api("/v1/emails/" + encodeURIComponent(id) + "/events")]);
      render(e, ev.data || []);
      if (!contentLoaded) { contentLoaded = true; loadContent(id, content); }
      if (quietStatuses.has(e.status) && !stopped) { stopped = true; setTimeout(stop, 0); }
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      facts.replaceChildren(errorBox(e));
    }
  });
  return stop;
}

// Names of the event data the timeline knows (the API's EmailEvent);
// other keys show as they come.
const dataLabels = {
  mx: "Remote host", response: "Reply", reason: "Error", userAgent: "User agent", ip: "IP address", referer: "Referer",
  linkUrl: "Link", linkIndex: "Link index", contactId: "Contact", reporter: "Reporter",
};

// hitClass is the classification of an open or a click, from its event's
// data (pipeline/store/tracking.go): a bot's hit (not counted), Apple Mail
// Privacy Protection's open at delivery (a machine's), a person's through
// a mail provider's image proxy, or a person's.
function hitClass(data) {
  if (data.botFiltered === "true") return ["bot", "bot" + (data.filterRule ? " (" + data.filterRule + ")" : "") + ", not counted"];
  if (data.machineOpen === "apple_mpp") return ["machine", "machine open (Apple Mail Privacy Protection)"];
  if (data.proxied === "true") return ["proxied", "person, through an image proxy" + (data.machineOpen ? " (" + data.machineOpen + ")" : "")];
  return ["person", "person"];
}

// timelineItem is one event: a delivery attempt with the remote host and
// its reply first, a tracking hit with its classification, then the rest
// of its data.
function timelineItem(ev) {
  const data = { ...(ev.data || {}) };
  let hit = null;
  if (ev.type === "opened" || ev.type === "clicked") {
    const [kind, text] = hitClass(data);
    hit = h("span", { class: "status hit-" + kind, "data-hit": kind }, text);
    for (const k of ["botFiltered", "machineOpen", "proxied", "filterRule"]) delete data[k];
    if (data.first === "true") { hit = [hit, " ", h("span", { class: "status" }, "first")]; }
    delete data.first;
    if (data.firstPerson === "true") { hit = [hit, " ", h("span", { class: "status" }, "first by a person")]; }
    delete data.firstPerson;
  }
  const attempt = data.mx || data.response ? h("p", { class: "attempt" },
    data.mx ? ["to ", h("span", { class: "mono", "data-field": "mx" }, data.mx)] : null,
    data.mx && data.response ? ": " : null,
    data.response ? h("span", { class: "mono", "data-field": "response" }, data.response) : null) : null;
  delete data.mx;
  delete data.response;
  if (attempt && data.reason && ev.data.response) delete data.reason; // the reply says it
  const rest = Object.entries(data);
  return h("li", { "data-type": ev.type },
    h("strong", {}, ev.type), " ", h("time", { datetime: ev.timestamp }, fmtTime(ev.timestamp)), hit ? [" ", hit] : null, attempt,
    rest.length ? h("dl", { class: "facts" },
      rest.flatMap(([k, v]) => [h("dt", {}, dataLabels[k] || k), h("dd", {}, h("span", { class: "mono" }, v))])) : null);
}

async function loadContent(id, section) {
  let raw;
  try {
    raw = bytesToBinary(await api("/v1/emails/" + encodeURIComponent(id) + "/content", { binary: true }));
  } catch (e) {
    if (e instanceof SessionEnded) return;
    section.replaceChildren(h("h2", { id: "content-h" }, "Content"), errorBox(e));
    return;
  }
  const parts = textParts(raw);
  const panels = {
    html: () => previewPanel(parts.html),
    text: () => parts.text === null ? h("p", { class: "muted" }, "No text part.") : h("pre", { class: "raw", "aria-label": "Text part" }, parts.text),
    raw: () => h("pre", { class: "raw mono", "aria-label": "Raw MIME" }, new TextDecoder().decode(Uint8Array.from(raw, (c) => c.charCodeAt(0)))),
  };
  const names = { html: "HTML preview", text: "Text", raw: "Raw MIME" };
  const panel = h("div", { role: "tabpanel", id: "content-panel" });
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Content" });
  const select = (name) => {
    for (const b of tabs.children) b.setAttribute("aria-selected", String(b.dataset.tab === name));
    panel.setAttribute("aria-labelledby", "tab-" + name);
    panel.replaceChildren(panels[name]());
  };
  for (const name of Object.keys(panels)) {
    tabs.append(h("button", { type: "button", role: "tab", id: "tab-" + name, "data-tab": name, "aria-controls": "content-panel", onclick: () => select(name) }, names[name]));
  }
  section.replaceChildren(h("h2", { id: "content-h" }, "Content"), tabs, panel);
  select(parts.html !== null ? "html" : "text");
}

// previewPanel shows the HTML part in an iframe with sandbox="" (no
// script, no form, no navigation, an origin of its own) whose policy
// blocks remote content; a click lets images load.
function previewPanel(html) {
  if (html === null) return h("p", { class: "muted" }, "No HTML part.");
  const frame = h("iframe", { class: "preview", sandbox: "", referrerpolicy: "no-referrer", title: "HTML preview of the email" });
  const csp = (images) => "default-src 'none'; style-src 'unsafe-inline'; img-src data:" + (images ? " https: http:" : "") + "; font-src data:";
  const doc = (images) => '<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="' + csp(images) + '">' + html;
  frame.srcdoc = doc(false);
  const btn = h("button", { type: "button" }, "Load remote images");
  btn.addEventListener("click", () => { frame.srcdoc = doc(true); btn.disabled = true; btn.textContent = "Remote images loaded"; });
  return h("div", {}, h("p", { class: "muted" }, "Remote images are blocked. Loading them fetches the open pixel too, which counts as an open. ", btn), frame);
}

// ---- domains ----

function domainsView() {
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const name = h("input", { id: "d-name", name: "name", required: true, placeholder: "mail.example.com" });
  const msg = h("p", { role: "status" });
  const form = h("form", { class: "inline", "aria-label": "Add a domain" },
    h("label", { for: "d-name" }, "Domain", name), h("button", { type: "submit", class: "primary" }, "Add domain"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    msg.textContent = "";
    try {
      await api("/v1/domains", { method: "POST", json: { name: name.value.trim() } });
      name.value = "";
      await load();
    } catch (e) {
      if (!(e instanceof SessionEnded)) msg.replaceChildren(errorBox(e));
    }
  });
  show(h("h1", {}, "Domains"), form, msg, list);

  const card = (d) => {
    const status = h("span", {}, statusChip(d.status));
    const verify = h("button", { type: "button" }, "Verify now");
    const note = h("span", { role: "status", class: "muted" });
    const rows = h("tbody");
    const fill = (d) => {
      status.replaceChildren(statusChip(d.status));
      rows.replaceChildren(...d.dnsRecords.map((r) => h("tr", {},
        h("td", {}, r.type, r.required ? "" : h("span", { class: "muted" }, " (advice)")),
        h("td", { class: "mono" }, r.name, " ", copyButton(r.name, "Copy the name of the " + r.type + " record " + r.name)),
        h("td", { class: "mono" }, r.value, " ", copyButton(r.value, "Copy the value of the " + r.type + " record " + r.name)),
        h("td", {}, statusChip(r.status)))));
      note.textContent = d.verifiedAt ? "Verified " + fmtTime(d.verifiedAt) : "";
    };
    verify.addEventListener("click", async () => {
      verify.disabled = true;
      note.textContent = "Checking DNS…";
      try {
        fill(await api("/v1/domains/" + encodeURIComponent(d.id) + "/verify", { method: "POST" }));
        note.textContent = "Checked " + new Date().toLocaleTimeString();
      } catch (e) {
        if (!(e instanceof SessionEnded)) note.textContent = e.message;
      } finally {
        verify.disabled = false;
      }
    });
    fill(d);
    return h("section", { class: "card", "aria-label": d.name },
      h("header", {}, h("h2", {}, d.name, " ", status), h("span", {}, note, " ", verify)),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, "Status"))),
        rows)));
  };
  const load = async () => {
    try {
      const res = await api("/v1/domains");
      list.replaceChildren(...(res.data.length ? res.data.map(card) : [h("p", { class: "muted" }, "No domains yet: add the domain you send from.")]));
    } catch (e) {
      if (!(e instanceof SessionEnded)) list.replaceChildren(errorBox(e));
    }
  };
  load();
}

// ---- keys ----

function keysView() {
  const list = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
  const created = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "inline", "aria-label": "Create an API key" },
    h("label", { for: "k-name" }, "Name", h("input", { id: "k-name", name: "name", required: true })),
    h("label", { for: "k-mode" }, "Mode", h("select", { id: "k-mode", name: "mode" }, h("option", { value: "live" }, "live"), h("option", { value: "test" }, "test"))),
    h("label", { for: "k-perm" }, "Permission", h("select", { id: "k-perm", name: "permission" }, h("option", { value: "sending" }, "sending"), h("option", { value: "full" }, "full"))),
    h("button", { type: "submit", class: "primary" }, "Create key"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    try {
      const k = await api("/v1/api-keys", { method: "POST", json: { name: f.get("name"), mode: f.get("mode"), permission: f.get("permission") } });
      form.reset();
      created.replaceChildren(h("div", { class: "secret", role: "status" },
        h("p", {}, "Key ", h("strong", {}, k.name), " created. Copy it now: it is not shown again."),
        h("p", { class: "mono", id: "new-key" }, k.key), copyButton(k.key, "Copy the new key")));
      await load();
    } catch (e) {
      if (!(e instanceof SessionEnded)) created.replaceChildren(errorBox(e));
    }
  });
  show(h("h1", {}, "API keys"), form, created, list);

  const load = async () => {
    try {
      const res = await api("/v1/api-keys");
      const keys = res.data.slice().sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
      list.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ["Name", "Key", "Mode", "Permission", "Created", "Last used", ""].map((t, i) =>
          h("th", { scope: "col", class: i === 4 || i === 5 ? "opt" : null }, t)))),
        h("tbody", {}, keys.map((k) => {
          const revoke = h("button", { type: "button", class: "danger", "aria-label": "Revoke key " + k.name }, "Revoke");
          revoke.addEventListener("click", async () => {
            const own = session && k.id === session.keyId;
            if (!confirm("Revoke " + k.name + "? Clients using it stop working" + (own ? ", and this session ends." : "."))) return;
            try {
              await api("/v1/api-keys/" + encodeURIComponent(k.id), { method: "DELETE" });
              await load();
            } catch (e) {
              if (!(e instanceof SessionEnded)) created.replaceChildren(errorBox(e));
            }
          });
          return h("tr", { "data-id": k.id },
            h("td", {}, k.name, session && k.id === session.keyId ? h("span", { class: "muted" }, " (this session)") : null),
            h("td", { class: "mono" }, k.prefix + "…" + k.lastFour), h("td", {}, k.mode), h("td", {}, k.permission),
            h("td", { class: "opt" }, fmtTime(k.createdAt)), h("td", { class: "opt" }, fmtTime(k.lastUsedAt)), h("td", {}, revoke));
        }))));
    } catch (e) {
      if (!(e instanceof SessionEnded)) list.replaceChildren(errorBox(e));
    }
  };
  load();
}

// ---- webhooks ----

// The events an endpoint may subscribe to (the API's Webhook.events).
const webhookEvents = ["email.sent", "email.delivered", "email.deferred", "email.bounced", "email.failed", "email.opened",
  "email.clicked", "email.complained", "email.unsubscribed", "account.paused", "account.resumed"];

// isoLocal is a datetime-local input's value for d, in the browser's zone.
function isoLocal(d) {
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function webhooksView() {
  const list = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
  const failed = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
  const note = h("div", { "aria-live": "polite" });
  const url = h("input", { id: "w-url", name: "url", type: "url", required: true, placeholder: "https://hooks.example.com/pigeonpost", size: 40 });
  const boxes = webhookEvents.map((ev) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "events", value: ev, checked: ev === "email.delivered" || ev === "email.bounced" }), ev));
  const machine = h("label", { class: "check" }, h("input", { type: "checkbox", name: "machineEvents" }), "Also machines' opens and clicks (bots, Apple MPP)");
  const form = h("form", { class: "stack", "aria-label": "Add a webhook endpoint" },
    h("label", { for: "w-url" }, "Endpoint URL", url),
    h("fieldset", {}, h("legend", {}, "Events"), h("div", { class: "checks" }, boxes)),
    machine,
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Add webhook")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const events = f.getAll("events");
    if (!events.length) { note.replaceChildren(errorBox(new Error("Choose at least one event."))); return; }
    try {
      const w = await api("/v1/webhooks", { method: "POST", json: { url: url.value.trim(), events, machineEvents: f.get("machineEvents") === "on" } });
      form.reset();
      note.replaceChildren(h("div", { class: "secret", role: "status" },
        h("p", {}, "Webhook ", h("span", { class: "mono" }, w.url), " added. Its signing secret is shown only now:"),
        h("p", { class: "mono", id: "new-secret" }, w.secret), copyButton(w.secret, "Copy the signing secret")));
      await load();
    } catch (e) {
      if (!(e instanceof SessionEnded)) note.replaceChildren(errorBox(e));
    }
  });
  show(h("h1", {}, "Webhooks"), form, note, h("h2", {}, "Endpoints"), list,
    h("h2", {}, "Deliveries given up"),
    h("p", { class: "muted" }, "Deliveries that failed for webhooks.max_age, newest first (the last 100). Redeliver sends one again; " +
      "Replay on an endpoint sends a window of its events again."),
    failed);

  let hooks = [];
  const replayForm = (w, out) => {
    const since = h("input", { type: "datetime-local", name: "since", required: true, value: isoLocal(new Date(Date.now() - 86400000)) });
    const until = h("input", { type: "datetime-local", name: "until" });
    const f = h("form", { class: "inline", "aria-label": "Replay the events of " + w.url },
      h("label", {}, "Since", since), h("label", {}, "Until (empty: now)", until),
      h("button", { type: "submit", class: "primary" }, "Replay"));
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { since: new Date(since.value).toISOString() };
      if (until.value) body.until = new Date(until.value).toISOString();
      try {
        const r = await api("/v1/webhooks/" + encodeURIComponent(w.id) + "/replay", { method: "POST", json: body });
        out.textContent = "Replay queued: " + r.queued + " deliveries, " + r.pending + " still being retried" +
          (r.truncated ? "; stopped at " + fmtTime(r.until) + ", replay again from there" : "") + ".";
      } catch (e) {
        if (!(e instanceof SessionEnded)) out.textContent = e.message;
      }
    });
    return f;
  };
  const loadHooks = async () => {
    const res = await api("/v1/webhooks");
    hooks = res.data;
    if (!hooks.length) {
      list.replaceChildren(h("p", { class: "muted" }, "No webhook endpoints."));
      return;
    }
    list.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, ["URL", "Events", "Machines", "Created", ""].map((t, i) => h("th", { scope: "col", class: i === 2 || i === 3 ? "opt" : null }, t)))),
      h("tbody", {}, hooks.map((w) => {
        const out = h("p", { role: "status", class: "muted" });
        const replayBox = h("div", { hidden: true }, replayForm(w, out));
        const replay = h("button", { type: "button", "aria-expanded": "false", "aria-label": "Replay events to " + w.url }, "Replay…");
        replay.addEventListener("click", () => {
          replayBox.hidden = !replayBox.hidden;
          replay.setAttribute("aria-expanded", String(!replayBox.hidden));
        });
        const attemptsBox = h("div", { hidden: true, class: "table-wrap", id: "attempts-" + w.id });
        const attempts = h("button", { type: "button", "aria-expanded": "false", "aria-controls": attemptsBox.id,
          "aria-label": "Recent deliveries to " + w.url }, "Deliveries");
        attempts.addEventListener("click", async () => {
          attemptsBox.hidden = !attemptsBox.hidden;
          attempts.setAttribute("aria-expanded", String(!attemptsBox.hidden));
          if (!attemptsBox.hidden) await loadAttempts(w, attemptsBox);
        });
        const del = h("button", { type: "button", class: "danger", "aria-label": "Delete webhook " + w.url }, "Delete");
        del.addEventListener("click", async () => {
          if (!confirm("Delete the webhook " + w.url + "? Its pending deliveries are dropped.")) return;
          try {
            await api("/v1/webhooks/" + encodeURIComponent(w.id), { method: "DELETE" });
            await load();
          } catch (e) {
            if (!(e instanceof SessionEnded)) note.replaceChildren(errorBox(e));
          }
        });
        return h("tr", { "data-id": w.id },
          h("td", { class: "mono" }, w.url, replayBox, out, attemptsBox),
          h("td", {}, w.events.join(", ")), h("td", { class: "opt" }, w.machineEvents ? "yes" : "no"),
          h("td", { class: "opt" }, fmtTime(w.createdAt)), h("td", {}, h("span", { class: "actions" }, attempts, replay, del)));
      }))));
  };
  // redeliverButton sends delivery d again under its id.
  const redeliverButton = (id) => {
    const state = h("span", { role: "status", class: "muted" });
    const again = h("button", { type: "button", "aria-label": "Redeliver " + id }, "Redeliver");
    again.addEventListener("click", async () => {
      again.disabled = true;
      try {
        const r = await api("/v1/webhooks/deliveries/" + encodeURIComponent(id) + "/redeliver", { method: "POST" });
        state.textContent = " " + r.status;
      } catch (e) {
        again.disabled = false;
        if (!(e instanceof SessionEnded)) state.textContent = " " + e.message;
      }
    });
    return [again, state];
  };
  // loadAttempts shows the endpoint's recent attempts (the last 50).
  const loadAttempts = async (w, box) => {
    box.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const res = await api("/v1/webhooks/" + encodeURIComponent(w.id) + "/deliveries");
      if (!res.data.length) {
        box.replaceChildren(h("p", { class: "muted" }, "No delivery attempted in the last week."));
        return;
      }
      const outcome = { delivered: "delivered", retrying: "pending", failed: "failed" };
      box.replaceChildren(h("table", { "aria-label": "Recent deliveries to " + w.url },
        h("thead", {}, h("tr", {}, ["When", "Event", "Outcome", "Latency", "Response", ""].map((t, i) =>
          h("th", { scope: "col", class: i === 3 ? "opt" : null }, t)))),
        h("tbody", {}, res.data.map((a) => h("tr", { "data-delivery": a.deliveryId, "data-outcome": a.outcome },
          h("td", {}, fmtTime(a.at), a.attempt > 1 ? h("span", { class: "muted" }, " (attempt " + a.attempt + ")") : null),
          h("td", {}, a.event),
          h("td", {}, h("span", { class: "status status-" + outcome[a.outcome] }, a.outcome)),
          h("td", { class: "opt" }, a.latencyMs + " ms"),
          h("td", { class: "mono", "data-field": "response" }, a.response,
            a.body ? h("div", { class: "muted", "data-field": "body" }, a.body) : null),
          h("td", {}, a.outcome === "retrying" ? null : redeliverButton(a.deliveryId)))))));
    } catch (e) {
      if (!(e instanceof SessionEnded)) box.replaceChildren(errorBox(e));
    }
  };
  const loadFailed = async () => {
    const res = await api("/v1/webhooks/failed");
    if (!res.data.length) {
      failed.replaceChildren(h("p", { class: "muted" }, "None."));
      return;
    }
    const urlOf = new Map(hooks.map((w) => [w.id, w.url]));
    failed.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, ["Given up", "Endpoint", "Event", "Attempts", "Last error", ""].map((t, i) => h("th", { scope: "col", class: i === 3 ? "opt" : null }, t)))),
      h("tbody", {}, res.data.map((d) => h("tr", { "data-id": d.id },
        h("td", {}, fmtTime(d.failedAt)), h("td", { class: "mono" }, urlOf.get(d.endpointId) || d.endpointId),
        h("td", {}, d.event), h("td", { class: "opt" }, String(d.attempts)),
        h("td", { class: "mono" }, d.lastError), h("td", {}, redeliverButton(d.id)))))));
  };
  const load = async () => {
    try {
      await loadHooks();
    } catch (e) {
      if (!(e instanceof SessionEnded)) list.replaceChildren(errorBox(e));
    }
    try {
      await loadFailed();
    } catch (e) {
      if (!(e instanceof SessionEnded)) failed.replaceChildren(errorBox(e));
    }
  };
  load();
}

// ---- suppressions ----

function suppressionsView() {
  const note = h("div", { "aria-live": "polite" });
  const email = h("input", { id: "s-email", name: "email", type: "email", required: true });
  const reason = h("input", { id: "s-reason", name: "reason", maxlength: 100, placeholder: "manual" });
  const form = h("form", { class: "inline", "aria-label": "Suppress an address" },
    h("label", { for: "s-email" }, "Address", email), h("label", { for: "s-reason" }, "Reason", reason),
    h("button", { type: "submit", class: "primary" }, "Suppress"));
  const search = h("input", { id: "s-search", type: "search", autocomplete: "off" });
  const shown = h("p", { class: "muted", id: "s-shown", role: "status" });
  const tbody = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  show(h("h1", {}, "Suppressions"),
    h("p", { class: "muted" }, "Mail to these addresses is skipped, over SMTP and the REST API."), form, note,
    h("form", { class: "inline", role: "search", "aria-label": "Search the suppressions", onsubmit: (ev) => ev.preventDefault() },
      h("label", { for: "s-search" }, "Search", search)),
    shown,
    h("div", { class: "table-wrap" }, h("table", { "aria-describedby": "s-shown" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Address"), h("th", { scope: "col" }, "Reason"),
        h("th", { scope: "col", class: "opt" }, "Since"), h("th", { scope: "col" }, ""))),
      tbody)),
    more);

  let rows = [];
  let cursor = null;
  let query = "";
  // The API searches the whole list (?q=), a bounded part per page: a page
  // may hold fewer matches, even none, with more of the list to search.
  const count = () => {
    const n = rows.length;
    shown.textContent = n === 0 && !cursor ? (query ? "No suppressed address contains " + JSON.stringify(query) + "." : "No suppressed addresses.") :
      n + (query ? " found" : " loaded") + " address" + (n === 1 ? "" : "es") + (cursor ? (query ? "; more of the list to search" : "; more to load") : "") + ".";
  };
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { query = search.value.trim(); reload(); }, 250);
  });
  const rowFor = (sp) => {
    const remove = h("button", { type: "button", class: "danger", "aria-label": "Remove " + sp.email }, "Remove");
    const tr = h("tr", { "data-email": sp.email },
      h("td", { class: "mono" }, sp.email), h("td", {}, sp.reason), h("td", { class: "opt" }, fmtTime(sp.createdAt)), h("td", {}, remove));
    const r = { email: sp.email, tr };
    remove.addEventListener("click", async () => {
      if (!confirm("Remove " + sp.email + " from the list? Mail to it is sent again.")) return;
      try {
        await api("/v1/suppressions/" + encodeURIComponent(sp.email), { method: "DELETE" });
        tr.remove();
        rows = rows.filter((x) => x !== r);
        note.replaceChildren(h("p", { role: "status" }, sp.email + " removed."));
        count();
      } catch (e) {
        if (!(e instanceof SessionEnded)) note.replaceChildren(errorBox(e));
      }
    });
    return r;
  };
  const page = async (after, q0) => {
    const q = new URLSearchParams({ limit: "100" });
    if (q0) q.set("q", q0);
    if (after) q.set("cursor", after);
    const res = await api("/v1/suppressions?" + q);
    if (q0 !== query) return; // a newer search started
    const seen = new Set(rows.map((r) => r.email));
    for (const sp of res.data) {
      if (seen.has(sp.email)) continue; // a list that changed under the scan
      const r = rowFor(sp);
      rows.push(r);
      tbody.append(r.tr);
    }
    cursor = res.hasMore ? res.nextCursor : null;
    more.hidden = !cursor;
    count();
  };
  const reload = async () => {
    rows = [];
    cursor = null;
    tbody.replaceChildren();
    try {
      // A search reads a bounded part of the list per page: a few pages
      // at once, so that a rare address is found without many clicks.
      await page(null, query);
      for (let i = 0; i < 4 && cursor && rows.length < 20; i++) await page(cursor, query);
    } catch (e) {
      if (!(e instanceof SessionEnded)) shown.replaceChildren(errorBox(e));
    }
  };
  more.addEventListener("click", async () => {
    try {
      await page(cursor, query);
    } catch (e) {
      if (!(e instanceof SessionEnded)) note.replaceChildren(errorBox(e));
    }
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { email: email.value.trim() };
    if (reason.value.trim()) body.reason = reason.value.trim();
    try {
      const sp = await api("/v1/suppressions", { method: "POST", json: body });
      form.reset();
      note.replaceChildren(h("p", { role: "status" }, sp.email + " suppressed."));
      await reload();
    } catch (e) {
      if (!(e instanceof SessionEnded)) note.replaceChildren(errorBox(e));
    }
  });
  reload();
}

// ---- tracking settings ----

const trackingFlags = [
  ["trackingEnabled", "Tracking on", "Off: no pixel and no rewritten links, even for mail that asks for them."],
  ["privacyMode", "Privacy mode", "Record opens and clicks without IP address, user agent or referer."],
  ["webhookOnEveryOpen", "Webhook on every open", "Else only an email's first open fires email.opened."],
  ["webhookOnEveryClick", "Webhook on every click", "Else only an email's first click fires email.clicked."],
];

function trackingView() {
  const out = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const msg = h("p", { role: "status" });
  show(h("h1", {}, "Tracking settings"),
    h("p", { class: "muted" }, "Each message asks for tracking; these account settings can only take it away. A domain can also turn opens or " +
      "clicks off and have its own privacy mode (PUT /v1/domains/{id}/tracking)."), out, msg);
  const fill = (t) => {
    const boxes = trackingFlags.map(([k, label, help]) => h("div", { class: "flag" },
      h("label", { class: "check" }, h("input", { type: "checkbox", name: k, checked: !!t[k], "aria-describedby": "help-" + k }), label),
      h("p", { class: "muted", id: "help-" + k }, help)));
    const placement = h("select", { id: "t-pixel", name: "pixelPlacement" },
      ["bottom", "top"].map((p) => h("option", { value: p, selected: t.pixelPlacement === p }, p)));
    const form = h("form", { class: "stack", "aria-label": "Tracking settings" }, boxes,
      h("label", { for: "t-pixel" }, "Open pixel placement", placement),
      h("div", {}, h("button", { type: "submit", class: "primary" }, "Save")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      msg.textContent = "";
      const body = { pixelPlacement: placement.value };
      for (const [k] of trackingFlags) body[k] = form.elements[k].checked;
      try {
        fill(await api("/v1/tracking/defaults", { method: "PATCH", json: body }));
        msg.textContent = "Saved " + new Date().toLocaleTimeString() + ".";
      } catch (e) {
        if (!(e instanceof SessionEnded)) msg.replaceChildren(errorBox(e));
      }
    });
    out.replaceChildren(form);
  };
  (async () => {
    try {
      fill(await api("/v1/tracking/defaults"));
    } catch (e) {
      if (!(e instanceof SessionEnded)) out.replaceChildren(errorBox(e));
    }
  })();
}

// ---- sends ----

// batchStatuses orders a batch's counts: the states a send goes through,
// then its ends.
const batchStatuses = ["scheduled", "pending", "sent", "delivered", "bounced", "complained", "failed", "suppressed", "cancelled"];

// accountCard shows the account's pause state (GET /v1/reputation) and
// its usage this month (GET /v1/usage). Pausing and resuming are the
// operator's (the admin API), not a key's.
function accountCard() {
  const box = h("section", { class: "card", "aria-labelledby": "acct-h" }, h("h2", { id: "acct-h" }, "Account"), h("p", { class: "muted" }, "Loading…"));
  (async () => {
    try {
      const [rep, use] = await Promise.all([api("/v1/reputation"), api("/v1/usage")]);
      const pct = (x) => (x * 100).toFixed(2) + " %";
      const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
      const state = rep.status === "paused" ?
        [statusChip("paused"), " ", rep.pause.reason.replace("_", " "), " since ", fmtTime(rep.pause.pausedAt), ": ",
          String(rep.held), " emails held. The operator resumes the account (pigeonpost account resume, or the admin API)."] :
        [statusChip("active")];
      box.replaceChildren(h("h2", { id: "acct-h" }, "Account"), h("dl", { class: "facts", id: "account-facts" },
        ...fact("Sending", h("span", { "data-field": "pause" }, state)),
        ...fact("This month (" + use.month + ")", h("span", { "data-field": "usage" },
          String(use.used) + (use.limit === null ? " sent, no monthly limit" : " of " + use.limit + " sent, " + use.remaining + " left"))),
        ...fact("Last " + rep.window.hours + " h", rep.window.sends + " sends, bounce rate " + pct(rep.window.bounceRate) +
          ", complaint rate " + pct(rep.window.complaintRate))));
    } catch (e) {
      if (!(e instanceof SessionEnded)) box.replaceChildren(h("h2", { id: "acct-h" }, "Account"), errorBox(e));
    }
  })();
  return box;
}

function sendsView(params) {
  const batchId = params.get("batchId") || "";
  const batches = h("div", { class: "table-wrap", id: "batches" }, h("p", { class: "muted" }, "Loading…"));
  const live = h("p", { class: "muted", id: "sends-live" }, "Loading…");
  const tbody = h("tbody", { id: "sends-body" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  show(h("h1", {}, "Sends"), accountCard(),
    h("h2", {}, batchId ? ["Batch ", h("span", { class: "mono" }, batchId), " ", h("a", { href: "#/sends" }, "(all sends)")] : "Batches"),
    h("p", { class: "muted" }, "The batches of the sends listed below (a segment send or POST /v1/sends/batch), counted by status."),
    batches,
    h("h2", {}, "Recent sends"), live,
    h("div", { class: "table-wrap" }, h("table", { "aria-describedby": "sends-live" },
      h("caption", { class: "sr-only" }, "Sends, newest first"),
      h("thead", {}, h("tr", {}, ["Created", "To", "Template", "Batch", "Status"].map((t, i) =>
        h("th", { scope: "col", class: i === 2 || i === 3 ? "opt" : null }, t)))),
      tbody)),
    more);

  const batchRow = (b) => h("tr", { "data-id": b.id },
    h("td", { class: "mono" }, h("a", { href: "#/sends?batchId=" + encodeURIComponent(b.id) }, b.id)),
    h("td", { class: "mono opt" }, b.templateId), h("td", { class: "mono opt" }, b.segmentId || "—"),
    h("td", {}, String(b.total), b.inProgress ? h("span", { class: "muted" }, " (queueing)") : null),
    h("td", {}, h("span", { class: "actions" }, batchStatuses.filter((s) => b.counts[s]).map((s) =>
      h("span", { class: "status status-" + s, "data-count": s }, s + " " + b.counts[s])))));
  const batchCache = new Map();
  const showBatches = async (ids) => {
    if (!ids.length) {
      batches.replaceChildren(h("p", { class: "muted" }, "No batches among these sends."));
      return;
    }
    // A batch's counts read each of its sends (about 6 ms a thousand):
    // one whose sends have all settled is not asked again.
    const list = await Promise.all(ids.map(async (id) => {
      const known = batchCache.get(id);
      if (known && !known.inProgress && !["scheduled", "pending", "sent"].some((s) => known.counts[s])) return known;
      const b = await api("/v1/batches/" + encodeURIComponent(id));
      batchCache.set(id, b);
      return b;
    }));
    batches.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, ["Batch", "Template", "Segment", "Total", "By status"].map((t, i) =>
        h("th", { scope: "col", class: i === 1 || i === 2 ? "opt" : null }, t)))),
      h("tbody", {}, list.map(batchRow))));
  };
  const rowFor = (s) => h("tr", { "data-id": s.id },
    h("td", {}, fmtTime(s.createdAt)), h("td", { class: "mono" }, h("a", { href: "#/emails/" + s.id }, s.toAddress)),
    h("td", { class: "mono opt" }, s.templateId),
    h("td", { class: "mono opt" }, s.batchId ? h("a", { href: "#/sends?batchId=" + encodeURIComponent(s.batchId) }, s.batchId) : "—"),
    h("td", {}, statusChip(s.status)));
  let cursor = null;
  const page = (after) => {
    const q = new URLSearchParams({ limit: "50" });
    if (batchId) q.set("batchId", batchId);
    if (after) q.set("cursor", after);
    return api("/v1/sends?" + q);
  };
  more.addEventListener("click", async () => {
    try {
      const res = await page(cursor);
      tbody.append(...res.data.map(rowFor));
      cursor = res.hasMore ? res.nextCursor : null;
      more.hidden = !cursor;
    } catch (e) {
      if (!(e instanceof SessionEnded)) live.replaceChildren(errorBox(e));
    }
  });
  return poll(async () => {
    try {
      const res = await page(null);
      tbody.replaceChildren(...res.data.map(rowFor));
      cursor = res.hasMore ? res.nextCursor : null;
      more.hidden = !cursor;
      live.textContent = res.data.length === 0 ? "No sends yet: send a template with POST /v1/sends." : "Live: updated " + new Date().toLocaleTimeString();
      // The batches of this page, at most 10 (each is one call).
      const ids = batchId ? [batchId] : [...new Set(res.data.map((s) => s.batchId).filter(Boolean))].slice(0, 10);
      await showBatches(ids);
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      live.replaceChildren(errorBox(e));
    }
  });
}

// ---- contacts ----

const contactStatuses = ["subscribed", "unsubscribed", "bounced", "complained"];

function contactsView(params) {
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter contacts" },
    h("label", { for: "c-status" }, "Status", h("select", { id: "c-status", name: "status" }, h("option", { value: "" }, "Any"),
      contactStatuses.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)))),
    h("label", { for: "c-email" }, "Email", h("input", { id: "c-email", name: "email", type: "email", value: params.get("email") || "" })),
    h("label", { for: "c-tag" }, "Tag", h("input", { id: "c-tag", name: "tag", value: params.get("tag") || "" })),
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("button", { type: "button", onclick: () => { location.hash = "#/contacts"; } }, "Clear"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    location.hash = "#/contacts" + (next.toString() ? "?" + next : "");
  });
  const shown = h("p", { class: "muted", id: "contacts-shown", role: "status" }, "Loading…");
  const tbody = h("tbody", { id: "contacts-body" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const segments = h("div", { class: "table-wrap", id: "segments" }, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Contacts"), form, shown,
    h("div", { class: "table-wrap" }, h("table", { "aria-describedby": "contacts-shown" },
      h("thead", {}, h("tr", {}, ["Email", "Name", "Status", "Tags", "Created"].map((t, i) =>
        h("th", { scope: "col", class: i === 1 || i === 4 ? "opt" : null }, t)))),
      tbody)),
    more,
    h("h2", {}, "Segments"),
    h("p", { class: "muted" }, "Each count reads the account's contacts: they are counted when you ask."),
    segments);

  let cursor = null;
  let n = 0;
  const rowFor = (c) => h("tr", { "data-id": c.id },
    h("td", { class: "mono" }, h("a", { href: "#/contacts/" + encodeURIComponent(c.id) }, c.email)),
    h("td", { class: "opt" }, [c.firstName, c.lastName].filter(Boolean).join(" ") || "—"),
    h("td", {}, statusChip(c.status)), h("td", {}, (c.tags || []).join(", ") || "—"), h("td", { class: "opt" }, fmtTime(c.createdAt)));
  const page = async (after) => {
    const q = new URLSearchParams({ limit: "50" });
    for (const k of ["status", "email", "tag"]) if (params.get(k)) q.set(k, params.get(k));
    if (after) q.set("cursor", after);
    const res = await api("/v1/contacts?" + q);
    tbody.append(...res.data.map(rowFor));
    n += res.data.length;
    cursor = res.hasMore ? res.nextCursor : null;
    more.hidden = !cursor;
    shown.textContent = n === 0 && !cursor ? "No contacts match." : n + " contact" + (n === 1 ? "" : "s") + " shown" + (cursor ? "; more to load" : "") + ".";
  };
  more.addEventListener("click", async () => {
    try { await page(cursor); } catch (e) { if (!(e instanceof SessionEnded)) shown.replaceChildren(errorBox(e)); }
  });
  (async () => {
    try { await page(null); } catch (e) { if (!(e instanceof SessionEnded)) shown.replaceChildren(errorBox(e)); }
  })();
  (async () => {
    try {
      const res = await api("/v1/segments?limit=100");
      if (!res.data.length) {
        segments.replaceChildren(h("p", { class: "muted" }, "No segments (POST /v1/segments)."));
        return;
      }
      segments.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ["Name", "Filter", "Contacts"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, res.data.map((sg) => {
          const count = h("td", { "data-field": "count" });
          const btn = h("button", { type: "button", "aria-label": "Count the contacts of " + sg.name }, "Count");
          btn.addEventListener("click", async () => {
            btn.disabled = true;
            try {
              const full = await api("/v1/segments/" + encodeURIComponent(sg.id));
              count.replaceChildren(String(full.count));
            } catch (e) {
              btn.disabled = false;
              if (!(e instanceof SessionEnded)) count.append(" " + e.message);
            }
          });
          count.append(btn);
          const f = sg.filter;
          const desc = [f.status ? "status " + f.status : null, f.tags.length ? "tags " + f.tags.join(" and ") : null,
            ...(f.fields || []).map((c) => c.field + " " + c.op + " " + c.value)].filter(Boolean).join("; ") || "every contact";
          return h("tr", { "data-id": sg.id }, h("td", {}, sg.name), h("td", { class: "mono" }, desc), count);
        }))));
    } catch (e) {
      if (!(e instanceof SessionEnded)) segments.replaceChildren(errorBox(e));
    }
  })();
}

function contactView(_params, id) {
  const title = h("h1", {}, "Contact");
  const facts = h("dl", { class: "facts" }, h("dt", {}, "Loading…"));
  const live = h("p", { class: "muted", id: "history-live" }, "Loading…");
  const tbody = h("tbody", { id: "history-body" });
  show(h("p", {}, h("a", { href: "#/contacts" }, "← Contacts")), title, facts,
    h("h2", {}, "History"), live,
    h("div", { class: "table-wrap" }, h("table", { "aria-describedby": "history-live" },
      h("caption", { class: "sr-only" }, "Emails to this contact, newest first"),
      h("thead", {}, h("tr", {}, ["Created", "Subject", "Status", "Opened", "Clicked"].map((t, i) =>
        h("th", { scope: "col", class: i >= 3 ? "opt" : null }, t)))),
      tbody)));
  (async () => {
    try {
      const c = await api("/v1/contacts/" + encodeURIComponent(id));
      title.textContent = c.email;
      const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
      facts.replaceChildren(
        ...fact("Status", statusChip(c.status)), ...fact("ID", h("span", { class: "mono" }, c.id)),
        ...fact("Name", [c.firstName, c.lastName].filter(Boolean).join(" ") || "—"), ...fact("Company", c.company || "—"),
        ...fact("Tags", (c.tags || []).join(", ") || "—"),
        ...Object.entries(c.fields || {}).flatMap(([k, v]) => fact(k, h("span", { class: "mono" }, v))),
        ...fact("Created", fmtTime(c.createdAt)), ...fact("Updated", fmtTime(c.updatedAt)));
      // Its history: every email to its address, sends and the rest.
      const res = await api("/v1/emails?" + new URLSearchParams({ to: c.email, limit: "50" }));
      tbody.replaceChildren(...res.data.map((e) => h("tr", { "data-id": e.id },
        h("td", {}, fmtTime(e.createdAt)), h("td", {}, h("a", { href: "#/emails/" + e.id }, e.subject || "(no subject)")),
        h("td", {}, statusChip(e.status)), h("td", { class: "opt" }, fmtTime(e.openedAt)), h("td", { class: "opt" }, fmtTime(e.clickedAt)))));
      live.textContent = res.data.length ? (res.hasMore ? "The last 50 emails." : res.data.length + " email" + (res.data.length === 1 ? "." : "s.")) : "No email to this address yet.";
    } catch (e) {
      if (!(e instanceof SessionEnded)) facts.replaceChildren(errorBox(e));
    }
  })();
}

// ---- templates ----

function templatesView() {
  const list = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
  const note = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack", "aria-label": "Create a template" },
    h("label", { for: "t-name" }, "Name", h("input", { id: "t-name", name: "name", required: true, maxlength: 200 })),
    h("label", { for: "t-subject" }, "Subject", h("input", { id: "t-subject", name: "subject", required: true, size: 40 })),
    h("label", { for: "t-html" }, "HTML", h("textarea", { id: "t-html", name: "html", rows: 5, placeholder: "<p>Hello {{first_name}}</p>" })),
    h("label", { for: "t-text" }, "Text", h("textarea", { id: "t-text", name: "text", rows: 3 })),
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Create template")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = { name: f.get("name").trim(), subject: f.get("subject") };
    if (f.get("html")) body.html = f.get("html");
    if (f.get("text")) body.text = f.get("text");
    try {
      const t = await api("/v1/templates", { method: "POST", json: body });
      form.reset();
      note.replaceChildren(h("p", { role: "status" }, "Template ", h("strong", {}, t.name), " created."));
      await load();
    } catch (e) {
      if (!(e instanceof SessionEnded)) note.replaceChildren(errorBox(e));
    }
  });
  show(h("h1", {}, "Templates"), form, note, list);
  const load = async () => {
    try {
      const res = await api("/v1/templates?limit=100");
      if (!res.data.length) {
        list.replaceChildren(h("p", { class: "muted" }, "No templates yet."));
        return;
      }
      list.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ["Name", "Subject", "Variables", "Updated", ""].map((t, i) =>
          h("th", { scope: "col", class: i === 2 || i === 3 ? "opt" : null }, t)))),
        h("tbody", {}, res.data.map((t) => {
          const del = h("button", { type: "button", class: "danger", "aria-label": "Delete template " + t.name }, "Delete");
          del.addEventListener("click", async () => {
            if (!confirm("Delete the template " + t.name + "? Sends that name it fail.")) return;
            try {
              await api("/v1/templates/" + encodeURIComponent(t.id), { method: "DELETE" });
              await load();
            } catch (e) {
              if (!(e instanceof SessionEnded)) note.replaceChildren(errorBox(e));
            }
          });
          return h("tr", { "data-id": t.id }, h("td", {}, t.name, h("div", { class: "mono muted" }, t.id)), h("td", {}, t.subject),
            h("td", { class: "mono opt" }, (t.variables || []).join(", ") || "—"), h("td", { class: "opt" }, fmtTime(t.updatedAt)), h("td", {}, del));
        }))));
    } catch (e) {
      if (!(e instanceof SessionEnded)) list.replaceChildren(errorBox(e));
    }
  };
  load();
}

// ---- analytics ----

let uPlotLoading = null;

// loadUPlot adds the vendored uPlot (an IIFE that defines window.uPlot) the
// first time a chart is drawn: other views do not pay for it.
function loadUPlot() {
  if (!uPlotLoading) {
    uPlotLoading = new Promise((resolve, reject) => {
      document.head.append(h("link", { rel: "stylesheet", href: "/dashboard/assets/vendor/uPlot.min.css" }));
      const s = h("script", { src: "/dashboard/assets/vendor/uPlot.iife.min.js" });
      s.addEventListener("load", () => resolve(window.uPlot));
      s.addEventListener("error", () => { uPlotLoading = null; reject(new Error("the chart library did not load")); });
      document.head.append(s);
    });
  }
  return uPlotLoading;
}

const chartSeries = [
  ["sent", "Sent", "#57606a"], ["delivered", "Delivered", "#116329"], ["uniqueOpens", "Unique opens", "#0a58ca"],
  ["uniqueClicks", "Unique clicks", "#8250df"], ["bounced", "Bounced", "#b42318"], ["complained", "Complaints", "#bc4c00"],
];

function analyticsView(params) {
  const range = params.get("range") || "30d";
  const tag = params.get("tag") || "";
  const form = h("form", { class: "filters", "aria-label": "Analytics range" },
    h("label", { for: "a-range" }, "Range", h("select", { id: "a-range", name: "range" },
      ["7d", "30d", "90d", "366d"].map((r) => h("option", { value: r, selected: r === range }, r)))),
    h("label", { for: "a-tag" }, "Tag", h("input", { id: "a-tag", name: "tag", value: tag })),
    h("button", { type: "submit", class: "primary" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    location.hash = "#/analytics?" + next;
  });
  const stats = h("div", { class: "stats" });
  const chart = h("div", { class: "chart", id: "chart", role: "img", "aria-label": "Daily counts chart" });
  const table = h("details", {}, h("summary", {}, "Show as a table"));
  const out = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Analytics"), form, out);

  let plot = null;
  let onResize = null;
  (async () => {
    try {
      const q = new URLSearchParams({ range });
      if (tag) q.set("tag", tag);
      const [a, uPlot] = await Promise.all([api("/v1/analytics?" + q), loadUPlot()]);
      const pct = (x) => (x * 100).toFixed(1) + " %";
      const botShare = a.rawOpens ? a.botFilteredOpens / a.rawOpens : 0;
      stats.replaceChildren(...[
        ["Sent", a.sent], ["Delivered", a.delivered], ["Opens (unique)", a.uniqueOpens], ["Clicks (unique)", a.uniqueClicks],
        ["Bounced", a.bounced], ["Complaints", a.complained], ["Open rate", pct(a.openRate)], ["Human open rate", pct(a.humanOpenRate)],
        ["Click rate", pct(a.clickRate)], ["Bounce rate", pct(a.bounceRate)], ["Bot-filtered opens", pct(botShare)],
      ].map(([k, v]) => h("div", { class: "stat" }, h("b", {}, String(v)), k)));
      const days = a.daily || [];
      const xs = days.map((d) => Date.parse(d.date + "T00:00:00Z") / 1000);
      const data = [xs, ...chartSeries.map(([k]) => days.map((d) => d[k] || 0))];
      out.replaceChildren(stats, chart, table);
      chart.setAttribute("aria-label", "Daily " + chartSeries.map((s) => s[1].toLowerCase()).join(", ") + " from " + a.from + " to " + a.to);
      const width = () => Math.max(280, chart.clientWidth || main.clientWidth - 40);
      plot = new uPlot({
        width: width(), height: 320,
        series: [{}, ...chartSeries.map(([, label, stroke]) => ({ label, stroke, width: 2 }))],
        axes: [{}, { size: 50 }],
        scales: { x: { time: true } },
      }, data, chart);
      onResize = () => plot.setSize({ width: width(), height: 320 });
      window.addEventListener("resize", onResize);
      table.append(h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day"), chartSeries.map(([, l]) => h("th", { scope: "col" }, l)))),
        h("tbody", {}, days.map((d) => h("tr", {}, h("td", {}, d.date), chartSeries.map(([k]) => h("td", {}, String(d[k] || 0)))))))));
    } catch (e) {
      if (!(e instanceof SessionEnded)) out.replaceChildren(errorBox(e));
    }
  })();
  return () => {
    if (onResize) window.removeEventListener("resize", onResize);
    if (plot) plot.destroy();
  };
}

// ---- start ----

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
(async () => {
  try {
    session = await loadSession();
  } catch (e) {
    show(errorBox(e));
    return;
  }
  if (session) started();
  else renderLogin("");
})();
