// The imdsmock dashboard. It reads and changes the mock only through the control API, on the
// page's own origin; with a control token it sends "Authorization: Bearer" (the token stays
// in this tab's sessionStorage, never in a URL). Everything a client sent (paths, user agents)
// is shown as text, never parsed as HTML.
"use strict";

const TOKEN_KEY = "imdsmock-control-token";
const STATE_EVERY_MS = 2000;
const LOG_WAIT_S = 20;
const MAX_ENTRIES = 2000;
const MAX_ROWS = 500;
const MAX_POLL = 1000; // the API's largest page: what one poll may bring
const CHOICES = JSON.parse(document.getElementById("choices").textContent);
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// A form field by name (a field called "action" or "method" hides the form's own property).
const field = (form, name) => form.elements.namedItem(name);

const ui = {
  token: sessionStorage.getItem(TOKEN_KEY),
  locked: false,
  unlocked: Promise.resolve(),
  release: () => {},
  state: null,
  stateAt: 0,
  cursor: 0,
  entries: [],
  paused: false,
  pausedAt: 0, // while paused, the log shows entries up to this seq
  imds: "http://169.254.169.254",
  leaf: null,
};

// -- DOM helpers ------------------------------------------------------------------------------

function build(ns, tag, attrs, children) {
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}
const h = (tag, attrs, ...children) => build(null, tag, attrs, children);
const svg = (tag, attrs, ...children) => build(SVG_NS, tag, attrs, children);

function fill(el, ...children) {
  el.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
}

function facts(el, pairs) {
  const items = [];
  for (const [name, value] of pairs) {
    items.push(h("dt", { text: name }), h("dd", { text: value ?? "—" }));
  }
  fill(el, ...items);
}

function say(output, text, ok) {
  output.textContent = text;
  output.className = "result " + (ok ? "ok" : "error");
}

// -- the control API --------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (ui.token) headers.Authorization = "Bearer " + ui.token;
  const init = { method, headers, cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    connection("down", "unreachable");
    throw new ApiError(0, "the control API does not answer (is the mock still running?)");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const message = (data && data.error) || `${response.status} ${response.statusText}`.trim();
  if (response.status === 401) {
    askToken(ui.token ? "The control API refused that token." : "This mock's control API needs its bearer token.");
    throw new ApiError(401, message);
  }
  connection("live", ui.paused ? "paused" : "live");
  if (!response.ok) throw new ApiError(response.status, message);
  return data;
}

const enc = (path) => path.split("/").map(encodeURIComponent).join("/");

// Run one action from a button or form: the API's answer (or its one-line error) goes to
// `output`, then the views are refreshed.
async function act(output, run, done) {
  output.textContent = "…";
  output.className = "result";
  try {
    const result = await run();
    say(output, done(result), true);
  } catch (error) {
    say(output, error.message, false);
    return;
  }
  refreshState();
}

// -- the token --------------------------------------------------------------------------------

function askToken(message) {
  if (!ui.locked) {
    ui.locked = true;
    ui.unlocked = new Promise((resolve) => (ui.release = resolve));
  }
  connection("down", "control token needed");
  $("token-message").textContent = message;
  $("token-open").hidden = false;
  const dialog = $("token-dialog");
  if (!dialog.open) {
    $("token-input").value = "";
    dialog.showModal();
  }
}

function useToken(token) {
  ui.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-forget").hidden = false;
  $("token-open").hidden = true;
  ui.locked = false;
  ui.release();
  refreshState();
}

function wireToken() {
  $("token-forget").hidden = !ui.token;
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    $("token-dialog").close();
    useToken(token);
  });
  $("token-cancel").addEventListener("click", () => $("token-dialog").close());
  $("token-open").addEventListener("click", () => askToken($("token-message").textContent));
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    ui.token = null;
    location.reload();
  });
}

function connection(kind, text) {
  const el = $("connection");
  el.className = "connection " + kind;
  el.textContent = text;
}

// -- tabs -------------------------------------------------------------------------------------

const TABS = ["instance", "requests", "metadata", "timeline", "faults"];

function showTab(name, focus) {
  if (!TABS.includes(name)) name = TABS[0];
  for (const tab of TABS) {
    const selected = tab === name;
    const button = $("tab-" + tab);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $("view-" + tab).hidden = !selected;
  }
  if (focus) $("tab-" + name).focus();
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  if (name === "timeline") drawTimeline();
  if (name === "requests") {
    renderLog();
    refreshReport();
  }
}

function wireTabs() {
  for (const tab of TABS) {
    const button = $("tab-" + tab);
    button.addEventListener("click", () => showTab(tab, false));
    button.addEventListener("keydown", (event) => {
      const at = TABS.indexOf(tab);
      const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: TABS.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      showTab(TABS[(moves[event.key] + TABS.length) % TABS.length], true);
    });
  }
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1), false));
  showTab(location.hash.slice(1), false);
}

// -- state: options, credentials, scenarios, faults, clock ------------------------------------

async function refreshState() {
  if (ui.locked) return;
  try {
    ui.state = await api("GET", "/v1/state");
  } catch (error) {
    if (error.status !== 401) showMessage(error.message);
    return;
  }
  ui.stateAt = Date.now();
  showMessage(null);
  // The first IMDS listener as bound; a wildcard address is reached through loopback.
  const first = ui.state["imds-urls"][0];
  if (first) ui.imds = first.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:");
  // A list is drawn again only when its data changed: a focused button is not replaced.
  if (changed("options", ui.state.options)) renderOptions();
  if (changed("credentials", ui.state.credentials)) renderCredentials();
  if (changed("scenarios", ui.state.scenarios)) renderScenarios();
  if (changed("faults", ui.state.faults)) renderFaults();
  if (changed("edits", ui.state.metadata)) renderEdits();
  renderClock();
  renderUpcoming();
  // What IMDS serves changes with edits, options, scenarios and scheduled changes coming due,
  // and with the configuration: an edit of a path that shows a fact of the instance
  // (instance-id, public-ipv4...) changes the instance's keys, not the edits.
  const now = mockNow();
  const due = ui.state.scenarios.flatMap(points).filter((p) => p.t <= now).length;
  const inputs = [ui.state.config, ui.state.metadata, ui.state.options, ui.state.scenarios, due];
  if (changed("served", inputs)) {
    refreshIdentity();
    refreshLeaf();
  }
}

const drawn = {};
function changed(name, data) {
  const key = JSON.stringify(data);
  if (drawn[name] === key) return false;
  drawn[name] = key;
  return true;
}

function showMessage(text) {
  const el = $("message");
  el.hidden = !text;
  el.textContent = text || "";
}

async function stateLoop() {
  for (;;) {
    await sleep(STATE_EVERY_MS);
    await ui.unlocked;
    if (document.visibilityState === "visible") await refreshState();
  }
}

function renderOptions() {
  const options = ui.state.options;
  const box = $("options");
  if (!box.childElementCount) {
    for (const [name, values] of Object.entries(CHOICES.options)) {
      const button = h("button", {
        type: "button",
        role: "switch",
        id: "opt-" + name,
        "aria-labelledby": "opt-label-" + name + " opt-" + name,
        onclick: () => {
          const next = ui.state.options[name] === values[0] ? values[1] : values[0];
          act($("options-result"), () => api("PATCH", "/v1/options", { [name]: next }), (o) => `${name} is ${o[name]}`);
        },
      });
      box.append(h("div", { class: "switch-row" }, h("span", { class: "name", id: "opt-label-" + name, text: name }), button));
    }
  }
  for (const [name, values] of Object.entries(CHOICES.options)) {
    const button = $("opt-" + name);
    button.setAttribute("aria-checked", String(options[name] === "required" || options[name] === "enabled"));
    button.textContent = options[name];
  }
  const hop = $("hop-limit");
  if (document.activeElement !== hop) hop.value = options["hop-limit"];
}

function renderCredentials() {
  const creds = ui.state.credentials;
  facts($("credentials"), [
    ["role", creds.role || "none (no instance profile)"],
    ["source", creds.source],
    ["rotates every", creds["rotate-every"] === undefined ? null : duration(creds["rotate-every"])],
    ["lifetime", creds.lifetime === undefined ? null : duration(creds.lifetime)],
    ["forced rotations", creds.generation],
    ["serving expired", creds.expired === undefined ? null : creds.expired ? "yes" : "no"],
    ["failures pending", creds.failing],
  ]);
  const expire = $("creds-expire");
  expire.setAttribute("aria-checked", String(Boolean(creds.expired)));
}

function wireInstance() {
  const [low, high] = CHOICES.ranges["hop-limit"];
  $("hop-limit-range").textContent = `${low} to ${high}`;
  $("hop-limit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = Number($("hop-limit").value);
    act($("options-result"), () => api("PATCH", "/v1/options", { "hop-limit": value }), (o) => `hop-limit is ${o["hop-limit"]}`);
  });
  $("creds-rotate").addEventListener("click", () =>
    act($("creds-result"), () => api("POST", "/v1/credentials/rotate", {}), () => "New credentials issued"),
  );
  $("creds-expire").addEventListener("click", () => {
    const on = $("creds-expire").getAttribute("aria-checked") !== "true";
    act($("creds-result"), () => api("POST", "/v1/credentials/expire", { on }), () =>
      on ? "Serving expired credentials" : "Serving valid credentials",
    );
  });
  $("creds-fail-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const count = Number($("creds-fail-count").value);
    act($("creds-result"), () => api("POST", "/v1/credentials/fail", { count }), () =>
      `The next ${count} credential fetches fail`,
    );
  });
}

// -- identity ---------------------------------------------------------------------------------

// A directory's listing, or null when it is not served; listings are walked from the top, so
// nothing absent is ever asked for.
async function listing(dir) {
  const data = await api("GET", "/v1/metadata/" + enc(dir));
  return data.value ? data.value.split("\n").filter(Boolean) : [];
}

async function listed(dir, lists) {
  if (!(dir in lists)) {
    const cut = dir.lastIndexOf("/");
    const parent = cut < 0 ? [dir + "/"] : await listed(dir.slice(0, cut), lists);
    const here = parent !== null && parent.includes(dir.slice(cut + 1) + "/");
    lists[dir] = here ? await listing(dir) : null;
  }
  return lists[dir];
}

async function served(path, lists) {
  const cut = path.lastIndexOf("/");
  const parent = await listed(path.slice(0, cut), lists);
  if (parent === null || !parent.includes(path.slice(cut + 1))) return null;
  return (await api("GET", "/v1/metadata/" + enc(path))).value;
}

async function refreshIdentity() {
  const lists = {};
  const get = (path) => served(path, lists).catch(() => null);
  const names = [
    ["instance-id", "meta-data/instance-id"],
    ["instance type", "meta-data/instance-type"],
    ["availability zone", "meta-data/placement/availability-zone"],
    ["region", "meta-data/placement/region"],
    ["AMI", "meta-data/ami-id"],
    ["private IPv4", "meta-data/local-ipv4"],
    ["public IPv4", "meta-data/public-ipv4"],
    ["IPv6", "meta-data/ipv6"],
    ["MAC", "meta-data/mac"],
    ["lifecycle", "meta-data/instance-life-cycle"],
  ];
  const values = [];
  for (const [label, path] of names) values.push([label, await get(path)]);
  const roles = await listed("meta-data/iam/security-credentials", lists).catch(() => null);
  values.push(["IAM role", (roles && roles[0]) || null]);
  facts($("identity"), values);
  const v = Object.fromEntries(values);
  const parts = [v["instance-id"], v["instance type"], v["availability zone"], v["private IPv4"]];
  $("headline").textContent = parts.filter(Boolean).join(" · ") || "no instance-id served";
  document.title = `imdsmock · ${v["instance-id"] || "instance"}`;
}

// -- live request log -------------------------------------------------------------------------

// The newest entries first, then long polls: each answers as soon as there is something after
// the cursor, or empty after LOG_WAIT_S seconds.
async function logLoop() {
  let fresh = true;
  for (;;) {
    await ui.unlocked;
    const query = fresh ? `limit=${MAX_ROWS}` : `after=${ui.cursor}&wait=${LOG_WAIT_S}&limit=${MAX_POLL}`;
    const asked = Date.now();
    try {
      const data = await api("GET", "/v1/requests?" + query);
      addEntries(data.requests);
      fresh = false;
      if (!data.requests.length && Date.now() - asked < 500) await sleep(1000);
    } catch (error) {
      if (error.status !== 401) {
        // Start again from the newest entries once the API answers (it may have restarted).
        fresh = true;
        ui.cursor = 0;
        ui.entries = [];
        showMessage(error.message);
        await sleep(STATE_EVERY_MS);
      }
    }
  }
}

function addEntries(entries) {
  if (!entries.length) return;
  ui.cursor = Math.max(ui.cursor, entries[entries.length - 1].seq);
  ui.entries.push(...entries);
  if (ui.entries.length > MAX_ENTRIES) ui.entries.splice(0, ui.entries.length - MAX_ENTRIES);
  renderLog();
  refreshReport();
}

function logFilter() {
  const form = $("log-filters");
  const method = field(form, "method").value;
  const path = field(form, "path").value.trim();
  const status = field(form, "status").value.trim();
  const client = field(form, "client").value.trim();
  const v1 = field(form, "imdsv1").checked;
  const rejected = field(form, "rejected").checked;
  return (e) =>
    (!method || e.method === method) &&
    (!path || e.path.includes(path)) &&
    (!status || String(e.status).startsWith(status)) &&
    (!client || e.client.includes(client)) &&
    (!v1 || e.imdsv1) &&
    (!rejected || e.status === 0 || e.status >= 400);
}

let logFrame = 0;
function renderLog() {
  if (logFrame) return;
  logFrame = requestAnimationFrame(() => {
    logFrame = 0;
    const keep = logFilter();
    const shown = [];
    let held = 0;
    for (let i = ui.entries.length - 1; i >= 0 && shown.length < MAX_ROWS; i--) {
      const e = ui.entries[i];
      if (ui.paused && e.seq > ui.pausedAt) held++;
      else if (keep(e)) shown.push(logRow(e));
    }
    fill($("log-rows"), ...shown);
    $("log-count").textContent = ui.entries.length ? `(${ui.entries.length})` : "";
    const note = held ? ` · ${held} new while paused` : "";
    $("log-summary").textContent = `${shown.length} shown of ${ui.entries.length}${note}`;
  });
}

function logRow(e) {
  const rejected = e.status === 0 || e.status >= 400;
  const token = e.token
    ? h("span", { class: "tag v2", text: "v2" })
    : e.imdsv1
      ? h("span", { class: "tag v1", text: "v1", title: "IMDSv1: a data request without a token" })
      : "no";
  return h(
    "tr",
    { class: e.imdsv1 ? "v1" : null, "data-seq": e.seq },
    h("td", { class: "time", title: new Date(e.time * 1000).toISOString(), text: clockTime(e.time) }),
    h("td", { class: "status" + (rejected ? " rejected" : ""), text: e.status === 0 ? "no answer" : e.status }),
    h("td", { class: "token" }, token),
    h("td", { text: e.method }),
    h("td", { class: "path", text: e.path }),
    h("td", { class: "client", text: e.client }),
    h("td", { class: "ua", title: e["user-agent"] || null, text: e["user-agent"] || "" }),
  );
}

function wireLog() {
  $("log-filters").addEventListener("input", renderLog);
  $("log-filters").addEventListener("submit", (event) => event.preventDefault());
  $("log-pause").addEventListener("click", () => {
    ui.paused = !ui.paused;
    ui.pausedAt = ui.cursor;
    const button = $("log-pause");
    button.setAttribute("aria-pressed", String(ui.paused));
    button.textContent = ui.paused ? "Resume" : "Pause";
    connection("live", ui.paused ? "paused" : "live");
    renderLog();
  });
  $("log-clear").addEventListener("click", () =>
    act($("log-result"), () => api("DELETE", "/v1/requests"), () => {
      ui.entries = [];
      renderLog();
      refreshReport();
      return "Request log cleared";
    }),
  );
}

// -- IMDSv1 report ----------------------------------------------------------------------------

let reportTimer = 0;
function refreshReport() {
  if (reportTimer) return;
  reportTimer = setTimeout(async () => {
    try {
      const data = await api("GET", "/v1/reports/imdsv1");
      drawReport(data.clients);
    } catch {
      // shown by the loops that poll the API
    }
    reportTimer = 0;
  }, 300);
}

function drawReport(clients) {
  const box = $("v1-chart");
  if (!clients.length) {
    fill(box, h("p", { class: "note", text: "No IMDSv1 requests logged: every data request sent a token." }));
    return;
  }
  const width = Math.max(260, box.clientWidth || 320);
  const bar = 14;
  const row = 44;
  const most = Math.max(...clients.map((c) => c.requests));
  const chart = svg("svg", {
    width,
    height: clients.length * row + 4,
    viewBox: `0 0 ${width} ${clients.length * row + 4}`,
    role: "img",
    "aria-label": "IMDSv1 requests per client and user agent",
  });
  clients.forEach((c, i) => {
    const y = i * row;
    const scale = (width - 40) / most;
    const label = `${c.client} · ${c["user-agent"] || "no user agent"}`;
    const summary = `${c.requests} requests: ${c.served} served, ${c.rejected} rejected`;
    chart.append(
      svg("text", { x: 0, y: y + 13, text: label.length > 60 ? label.slice(0, 59) + "…" : label }),
      svg("rect", { class: "served", x: 0, y: y + 19, width: c.served * scale, height: bar }, svg("title", { text: summary })),
      svg("rect", { class: "rejected", x: c.served * scale, y: y + 19, width: c.rejected * scale, height: bar }, svg("title", { text: summary })),
      svg("text", { class: "muted", x: c.requests * scale + 6, y: y + 31, text: String(c.requests) }),
    );
  });
  const list = h("ul", { class: "plain" });
  for (const c of clients) {
    list.append(h("li", { text: `${c.client} · ${c["user-agent"] || "no user agent"}: ${c.requests} (${c.served} served, ${c.rejected} rejected), e.g. ${c.paths[0]}` }));
  }
  fill(box, chart, h("div", { class: "legend" }, h("span", { class: "served", text: "served" }), h("span", { class: "rejected", text: "rejected" })), list);
}

// -- metadata tree ----------------------------------------------------------------------------

function treeNode(path, label, isDir) {
  if (!isDir) {
    return h("li", {}, h("button", { type: "button", class: "leaf", "data-path": path, onclick: () => showLeaf(path), text: label }));
  }
  const list = h("ul", {});
  const details = h("details", { "data-path": path }, h("summary", { text: label }), list);
  details.addEventListener("toggle", () => {
    if (details.open && !details.dataset.loaded) loadDir(details, list, path);
  });
  return h("li", {}, details);
}

async function loadDir(details, list, path) {
  details.dataset.loaded = "1";
  const open = new Set(Array.from(list.querySelectorAll("details[open]"), (d) => d.dataset.path));
  try {
    const names = await listing(path);
    fill(
      list,
      ...names.map((entry) => {
        // public-keys/ lists "0=name": the key's folder is "0/".
        const [name, named] = entry.includes("=") ? [entry.split("=")[0] + "/", entry] : [entry, entry];
        const isDir = name.endsWith("/");
        return treeNode(path + "/" + name.replace(/\/$/, ""), named, isDir);
      }),
    );
    if (!names.length) fill(list, h("li", { class: "note", text: "(empty)" }));
    // Opening a folder again loads it again (the toggle event).
    for (const d of list.querySelectorAll("details")) if (open.has(d.dataset.path)) d.open = true;
  } catch (error) {
    delete details.dataset.loaded;
    fill(list, h("li", { class: "result error", text: error.message }));
  }
}

function buildTree() {
  fill(
    $("tree"),
    h("ul", {}, treeNode("meta-data", "meta-data/", true), treeNode("dynamic", "dynamic/", true), treeNode("user-data", "user-data", false)),
  );
}

function curlFor(path) {
  const quote = (s) => "'" + s.replaceAll("'", "'\\''") + "'";
  return (
    `TOKEN=$(curl -s -X PUT ${quote(ui.imds + "/latest/api/token")} -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600') && ` +
    `curl -s -H "X-aws-ec2-metadata-token: $TOKEN" ${quote(ui.imds + "/latest/" + enc(path))}`
  );
}

async function showLeaf(path) {
  ui.leaf = path;
  for (const b of document.querySelectorAll(".tree .leaf")) {
    b.setAttribute("aria-current", String(b.dataset.path === path));
  }
  $("edit-path").value = path;
  $("leaf-path").textContent = path;
  $("leaf-curl").value = curlFor(path);
  $("leaf-copy").disabled = false;
  $("leaf-result").textContent = "";
  try {
    const data = await api("GET", "/v1/metadata/" + enc(path));
    $("leaf-value").textContent = data.value;
    $("edit-value").value = data.value;
  } catch (error) {
    $("leaf-value").textContent = "";
    say($("leaf-result"), error.message, false);
  }
}

function refreshLeaf() {
  if (ui.leaf) showLeaf(ui.leaf);
  for (const d of document.querySelectorAll("#tree > ul > li > details")) {
    delete d.dataset.loaded;
    if (d.open) loadDir(d, d.querySelector("ul"), d.dataset.path);
  }
}

function renderEdits() {
  const edits = Object.entries(ui.state.metadata);
  const list = $("edits");
  if (!edits.length) {
    fill(list, h("li", { class: "empty", text: "None: the instance is served as configured." }));
    return;
  }
  fill(
    list,
    ...edits.map(([path, value]) =>
      h("li", { class: "mono" }, value === null ? `${path} (deleted)` : `${path} = ${value.length > 80 ? value.slice(0, 79) + "…" : value}`),
    ),
  );
}

function wireMetadata() {
  buildTree();
  $("leaf-copy").addEventListener("click", async () => {
    const text = $("leaf-curl").value;
    try {
      await navigator.clipboard.writeText(text);
      say($("leaf-result"), "Copied the curl command", true);
    } catch {
      $("leaf-curl").select();
      say($("leaf-result"), "The browser refused the clipboard here: the command is selected, copy it with Ctrl+C", false);
    }
  });
  const out = $("edit-result");
  $("edit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const path = $("edit-path").value.trim();
    const value = $("edit-value").value;
    act(out, () => api("PUT", "/v1/metadata/" + enc(path), { value }), (r) => `${r.path} now serves the new value`);
  });
  $("edit-delete").addEventListener("click", () => {
    const path = $("edit-path").value.trim();
    act(out, () => api("DELETE", "/v1/metadata/" + enc(path)), (r) => `${r.path} is no longer served`);
  });
  $("edit-reset").addEventListener("click", () =>
    act(out, () => api("DELETE", "/v1/metadata"), () => "Every edit dropped: the instance is served as configured"),
  );
}

// -- timeline, clock and scenarios ------------------------------------------------------------

function mockNow() {
  const clock = ui.state.clock;
  return clock.kind === "manual" ? clock.now : clock.now + (Date.now() - ui.stateAt) / 1000;
}

function duration(seconds) {
  const s = Math.round(Math.abs(seconds));
  if (s < 60) return `${s} s`;
  const two = (big, bigUnit, small, smallUnit) => (small ? `${big} ${bigUnit} ${small} ${smallUnit}` : `${big} ${bigUnit}`);
  if (s < 3600) return two(Math.floor(s / 60), "min", s % 60, "s");
  if (s < 86400) return two(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "min");
  return two(Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h");
}

function clockTime(t) {
  return new Date(t * 1000).toISOString().slice(11, 23);
}

function renderClock() {
  const clock = ui.state.clock;
  facts($("clock"), [
    ["clock", clock.kind],
    ["now", clock["now-iso"]],
    ["running for", duration(clock.elapsed)],
  ]);
  $("clock-manual").hidden = clock.kind !== "manual";
  $("clock-system").hidden = clock.kind === "manual";
}

const seconds = (iso) => Date.parse(iso) / 1000;

// Every point in time at which a scenario changes what is served.
function points(s) {
  const out = [];
  const add = (iso, short, what) => iso && out.push({ t: seconds(iso), short, what, id: s.id });
  if (s.type === "spot-interruption") {
    add(s["rebalance-at"], "rebalance", "rebalance recommendation");
    add(s.at, "notice", `spot interruption notice (${s.action})`);
    const halt = s["on-termination"] === "stop-serving" ? ": IMDS stops answering" : "";
    add(s.time, s.action, `instance ${s.action} time${halt}`);
  } else if (s.type === "rebalance-recommendation") {
    add(s.at, "rebalance", "rebalance recommendation");
  } else if (s.type === "maintenance-event") {
    add(s.at, s.code, `maintenance event ${s.code} scheduled`);
    add(s["complete-at"], "completed", `maintenance event ${s.code} completed`);
    add(s["cancel-at"], "canceled", `maintenance event ${s.code} canceled`);
  } else if (s.type === "asg-lifecycle") {
    for (const st of s.states) add(st.at, st.state, `Auto Scaling target state ${st.state}`);
  }
  return out;
}

function renderScenarios() {
  const list = $("scenarios");
  const scenarios = ui.state.scenarios;
  if (!scenarios.length) fill(list, h("li", { class: "empty", text: "No scenario started." }));
  else {
    fill(
      list,
      ...scenarios.map((s) =>
        h(
          "li",
          { class: "item" },
          h("span", {}, h("strong", { text: s.type }), " ", h("code", { text: s.id })),
          h("button", {
            type: "button",
            class: "quiet",
            "aria-label": `Cancel ${s.id}`,
            text: "Cancel",
            onclick: () => act($("scenarios-result"), () => api("DELETE", "/v1/scenarios/" + encodeURIComponent(s.id)), () => `Cancelled ${s.id}`),
          }),
        ),
      ),
    );
  }
}

function renderUpcoming() {
  const now = mockNow();
  const upcoming = ui.state.scenarios.flatMap(points).filter((p) => p.t > now).sort((a, b) => a.t - b.t);
  fill(
    $("upcoming"),
    ...(upcoming.length
      ? upcoming.map((p) => h("li", { text: `in ${duration(p.t - now)} (${new Date(p.t * 1000).toISOString().slice(0, 19)}Z): ${p.what} · ${p.id}` }))
      : [h("li", { class: "empty", text: "Nothing scheduled." })]),
  );
  drawTimeline();
}

// Round tick steps for the time axis, in seconds.
const STEPS = [10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 604800];

function drawTimeline() {
  const box = $("timeline-chart");
  if (!ui.state || box.offsetParent === null) return;
  const now = mockNow();
  const scenarios = ui.state.scenarios;
  const times = [now, ...scenarios.flatMap(points).map((p) => p.t)];
  const span = Math.max(Math.max(...times) - Math.min(...times), 300);
  const start = Math.min(...times) - span * 0.08;
  const end = start + span * 1.16;
  const width = Math.max(280, box.clientWidth);
  const lane = 44;
  const top = 24;
  const height = top + Math.max(1, scenarios.length) * lane;
  const x = (t) => 12 + ((t - start) / (end - start)) * (width - 24);
  const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Scenarios on a time axis; the vertical line is now" });
  scenarios.forEach((s, i) => {
    if (i % 2) chart.append(svg("rect", { class: "lane", x: 0, y: top + i * lane, width, height: lane }));
  });
  const step = STEPS.find((st) => (end - start) / st <= 6) || STEPS[STEPS.length - 1];
  for (let t = now + Math.ceil((start - now) / step) * step; t <= end; t += step) {
    const offset = Math.round(t - now);
    chart.append(
      svg("line", { class: "axis", x1: x(t), x2: x(t), y1: 16, y2: height }),
      svg("text", { class: "muted", x: x(t), y: 12, "text-anchor": "middle", text: offset ? (offset < 0 ? "−" : "+") + duration(offset) : "now" }),
    );
  }
  scenarios.forEach((s, i) => {
    const y = top + i * lane;
    chart.append(svg("text", { class: "muted", x: 4, y: y + 13, text: s.id }));
    for (const p of points(s)) {
      const title = svg("title", { text: `${p.what} at ${new Date(p.t * 1000).toISOString()}` });
      chart.append(
        svg("circle", { class: p.t <= now ? "past" : "future", cx: x(p.t), cy: y + 22, r: 6 }, title),
        svg("text", { x: x(p.t), y: y + 40, "text-anchor": "middle", text: p.short }),
      );
    }
  });
  chart.append(svg("line", { class: "now", x1: x(now), x2: x(now), y1: 16, y2: height }));
  fill(box, chart);
}

function wireTimeline() {
  for (const select of document.querySelectorAll("select[data-choices]")) {
    for (const value of CHOICES[select.dataset.choices]) select.append(h("option", { text: value }));
  }
  for (const form of document.querySelectorAll("form[data-scenario]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = { type: form.dataset.scenario };
      const delay = Number(field(form, "delay").value || 0);
      const at = delay > 0 ? `+${delay}s` : "now";
      // An empty choice leaves the field out: the API's default applies.
      for (const name of ["action", "code"]) if (field(form, name)?.value) body[name] = field(form, name).value;
      if (field(form, "state")) body.states = [{ at, state: field(form, "state").value }];
      else body.at = at;
      act($("start-result"), () => api("POST", "/v1/scenarios", body), (s) => `Started ${s.type} ${s.id}`);
    });
  }
  const advance = (value) =>
    act($("clock-result"), () => api("POST", "/v1/clock/advance", { seconds: value }), (c) => `The clock is at ${c["now-iso"]}`);
  for (const button of document.querySelectorAll("[data-advance]")) {
    button.addEventListener("click", () => advance(Number(button.dataset.advance)));
  }
  $("advance-form").addEventListener("submit", (event) => {
    event.preventDefault();
    advance(Number($("advance-seconds").value));
  });
  $("clock-reset").addEventListener("click", () =>
    act($("clock-result"), () => api("POST", "/v1/clock/reset", {}), (c) => `The clock is back at ${c["now-iso"]}`),
  );
  window.addEventListener("resize", () => {
    drawTimeline();
    refreshReport();
  });
}

// -- faults -----------------------------------------------------------------------------------

function renderFaults() {
  const faults = ui.state.faults;
  const list = $("fault-list");
  if (!faults.length) {
    fill(list, h("li", { class: "empty", text: "No fault: every request is answered normally." }));
    return;
  }
  fill(
    list,
    ...faults.map((f) => {
      const what = f.kind === "status" ? `answer ${f.status}` : f.kind === "latency" ? `wait ${f["latency-ms"]} ms` : f.kind;
      const scope = [`path ${f.path}`, f.client ? `client ${f.client}` : null, f.count ? `next ${f.count}` : null, f.probability < 1 ? `p=${f.probability}` : null];
      return h(
        "li",
        { class: "item" },
        h("span", {}, h("strong", { text: what }), " ", scope.filter(Boolean).join(", "), " ", h("code", { text: f.id })),
        h("button", {
          type: "button",
          class: "quiet",
          "aria-label": `Remove ${f.id}`,
          text: "Remove",
          onclick: () => act($("faults-result"), () => api("DELETE", "/v1/faults/" + encodeURIComponent(f.id)), () => `Removed ${f.id}`),
        }),
      );
    }),
  );
}

function wireFaults() {
  const form = $("fault-form");
  const showKind = () => {
    for (const label of form.querySelectorAll("[data-for-kind]")) label.hidden = label.dataset.forKind !== field(form, "kind").value;
  };
  field(form, "kind").addEventListener("change", showKind);
  showKind();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { kind: field(form, "kind").value };
    if (body.kind === "status") body.status = Number(field(form, "status").value);
    if (body.kind === "latency") body["latency-ms"] = Number(field(form, "latency-ms").value);
    for (const name of ["path", "client", "count", "probability"]) {
      const value = field(form, name).value.trim();
      if (value) body[name] = name === "path" || name === "client" ? value : Number(value);
    }
    act($("fault-result"), () => api("POST", "/v1/faults", body), (f) => `Added ${f.kind} fault ${f.id}`);
  });
  $("faults-clear").addEventListener("click", () =>
    act($("faults-result"), () => api("DELETE", "/v1/faults"), () => "Every fault removed"),
  );
}

// -- start ------------------------------------------------------------------------------------

function start() {
  wireToken();
  wireTabs();
  wireInstance();
  wireLog();
  wireMetadata();
  wireTimeline();
  wireFaults();
  if (ui.token) $("token-forget").hidden = false;
  refreshState();
  stateLoop();
  logLoop();
}

start();
