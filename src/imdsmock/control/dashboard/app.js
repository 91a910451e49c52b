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
  report: null,
  // Fleet mode: the instances (GET /v1/instances), the one on show (null: the default
  // instance) and the one the address asked for, chosen once the fleet is known.
  fleet: null,
  fleetMode: false,
  instance: null,
  wanted: null,
  gen: 0, // bumped when another instance is chosen: answers about the last one are dropped
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

// A route of the instance on show: the default instance's as is, a fleet member's under
// /v1/instances/NAME/ (the clock, fault rules and request log are the mock's: not these).
function mine(path) {
  return ui.fleetMode && ui.instance ? `/v1/instances/${encodeURIComponent(ui.instance)}${path.slice(3)}` : path;
}
const shown = () => ui.instance || "default";
const onWhich = () => (ui.fleetMode ? ` on ${shown()}` : "");

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

const ALL_TABS = ["fleet", "instance", "requests", "metadata", "timeline", "faults"];
// The Fleet view is there only for a mock serving a fleet.
const tabs = () => (ui.fleetMode ? ALL_TABS : ALL_TABS.slice(1));
let view = "instance";

// The address says the view, and in fleet mode the instance on show: #timeline/web.
function fromHash() {
  const [name, instance] = location.hash.slice(1).split("/");
  return [name, instance ? decodeURIComponent(instance) : null];
}

function writeHash() {
  const hash = "#" + view + (ui.fleetMode && ui.instance ? "/" + encodeURIComponent(ui.instance) : "");
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

function showTab(name, focus) {
  const names = tabs();
  if (!names.includes(name)) name = names.includes("instance") ? "instance" : names[0];
  view = name;
  for (const tab of ALL_TABS) {
    const selected = tab === name;
    const button = $("tab-" + tab);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $("view-" + tab).hidden = !selected;
  }
  if (focus) $("tab-" + name).focus();
  writeHash();
  if (name === "timeline") drawTimeline();
  if (name === "requests") {
    renderLog();
    refreshReport();
  }
  if (name === "fleet" && ui.fleet) refreshFleet();
}

function wireTabs() {
  for (const tab of ALL_TABS) {
    const button = $("tab-" + tab);
    button.addEventListener("click", () => showTab(tab, false));
    button.addEventListener("keydown", (event) => {
      const names = tabs();
      const at = names.indexOf(tab);
      const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: names.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      showTab(names[(moves[event.key] + names.length) % names.length], true);
    });
  }
  window.addEventListener("hashchange", () => {
    const [name, instance] = fromHash();
    if (ui.fleetMode) choose(instance, false);
    else ui.wanted = instance;
    showTab(name, false);
  });
  const [name, instance] = fromHash();
  ui.wanted = instance;
  ui.wantedView = name;
  showTab(name, false);
}

// -- state: options, credentials, scenarios, faults, clock ------------------------------------

async function refreshState() {
  if (ui.locked) return;
  const gen = ui.gen;
  let state;
  try {
    state = await api("GET", mine("/v1/state"));
  } catch (error) {
    if (gen !== ui.gen) return;
    if (error.status === 404 && ui.instance) {
      // The instance was removed meanwhile: show the default one.
      const gone = ui.instance;
      choose(null, false);
      say($("fleet-result"), `The instance ${gone} is no longer served: showing the default instance`, false);
    } else if (error.status !== 401) showMessage(error.message);
    return;
  }
  if (gen !== ui.gen) return;
  ui.state = state;
  ui.stateAt = Date.now();
  showMessage(null);
  setFleet(state.instances);
  if (gen !== ui.gen) return; // the address named another instance: its state is on its way
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
  // The list of instances costs the mock more the bigger the fleet: asked while the Fleet
  // view is shown, or when the instances changed.
  const listed = ui.fleet && ui.fleet.map((i) => i.name).join("\n");
  if (ui.fleetMode && (view === "fleet" || listed !== state.instances.join("\n"))) refreshFleet();
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
          act($("options-result"), () => api("PATCH", mine("/v1/options"), { [name]: next }), (o) => `${name} is ${o[name]}`);
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
    act($("options-result"), () => api("PATCH", mine("/v1/options"), { "hop-limit": value }), (o) => `hop-limit is ${o["hop-limit"]}`);
  });
  $("creds-rotate").addEventListener("click", () =>
    act($("creds-result"), () => api("POST", mine("/v1/credentials/rotate"), {}), () => "New credentials issued"),
  );
  $("creds-expire").addEventListener("click", () => {
    const on = $("creds-expire").getAttribute("aria-checked") !== "true";
    act($("creds-result"), () => api("POST", mine("/v1/credentials/expire"), { on }), () =>
      on ? "Serving expired credentials" : "Serving valid credentials",
    );
  });
  $("creds-fail-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const count = Number($("creds-fail-count").value);
    act($("creds-result"), () => api("POST", mine("/v1/credentials/fail"), { count }), () =>
      `The next ${count} credential fetches fail`,
    );
  });
}

// -- identity ---------------------------------------------------------------------------------

// A directory's listing, or null when it is not served; listings are walked from the top, so
// nothing absent is ever asked for.
async function listing(dir, at = mine("/v1/metadata/")) {
  const data = await api("GET", at + enc(dir));
  return data.value ? data.value.split("\n").filter(Boolean) : [];
}

// One walk of one instance's tree: the routes it started with (another instance may be
// chosen meanwhile) and the listings it read.
const walker = () => ({ at: mine("/v1/metadata/"), lists: new Map() });

async function listed(dir, walk) {
  if (!walk.lists.has(dir)) {
    const cut = dir.lastIndexOf("/");
    const parent = cut < 0 ? [dir + "/"] : await listed(dir.slice(0, cut), walk);
    const here = parent !== null && parent.includes(dir.slice(cut + 1) + "/");
    walk.lists.set(dir, here ? await listing(dir, walk.at) : null);
  }
  return walk.lists.get(dir);
}

async function served(path, walk) {
  const cut = path.lastIndexOf("/");
  const parent = await listed(path.slice(0, cut), walk);
  if (parent === null || !parent.includes(path.slice(cut + 1))) return null;
  return (await api("GET", walk.at + enc(path))).value;
}

let identityRun = 0;
async function refreshIdentity() {
  // Only the latest run writes: an earlier one (another instance, older edits) is dropped.
  const run = ++identityRun;
  const walk = walker();
  const get = (path) => served(path, walk).catch(() => null);
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
  const roles = await listed("meta-data/iam/security-credentials", walk).catch(() => null);
  values.push(["IAM role", (roles && roles[0]) || null]);
  if (run !== identityRun) return;
  facts($("identity"), values);
  const v = Object.fromEntries(values);
  const parts = [v["instance-id"], v["instance type"], v["availability zone"], v["private IPv4"]];
  const line = parts.filter(Boolean).join(" · ") || "no instance-id served";
  $("headline").textContent = ui.fleetMode ? `${shown()} · ${line}` : line;
  const which = ui.fleetMode ? `${shown()} · ` : "";
  document.title = `imdsmock · ${which}${v["instance-id"] || "instance"}`;
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
  const instance = ui.fleetMode ? field(form, "instance").value : "";
  return (e) =>
    (!instance || (e.instance || "default") === instance) &&
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
    ui.fleetMode ? h("td", { class: "instance", text: e.instance || "default" }) : null,
    h("td", { class: "ua", title: e["user-agent"] || null, text: e["user-agent"] || "" }),
  );
}

function wireLog() {
  // A select may report its choice as "change" alone (as WebDriver's option clicks do).
  for (const kind of ["input", "change"]) {
    $("log-filters").addEventListener(kind, () => {
      renderLog();
      drawReport();
    });
  }
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
      ui.report = (await api("GET", "/v1/reports/imdsv1")).clients;
      drawReport();
    } catch {
      // shown by the loops that poll the API
    }
    reportTimer = 0;
  }, 300);
}

function drawReport() {
  const box = $("v1-chart");
  if (!ui.report) return;
  // In fleet mode the report follows the log's instance filter, and names the instance.
  const only = ui.fleetMode ? field($("log-filters"), "instance").value : "";
  const clients = ui.report.filter((c) => !only || (c.instance || "default") === only);
  if (!clients.length) {
    const whose = only ? ` of ${only}` : "";
    fill(box, h("p", { class: "note", text: `No IMDSv1 requests${whose} logged: every data request sent a token.` }));
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
    const label = `${c.instance && !only ? c.instance + " · " : ""}${c.client} · ${c["user-agent"] || "no user agent"}`;
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
    const who = c.instance && !only ? `${c.instance} · ` : "";
    list.append(h("li", { text: `${who}${c.client} · ${c["user-agent"] || "no user agent"}: ${c.requests} (${c.served} served, ${c.rejected} rejected), e.g. ${c.paths[0]}` }));
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

const quote = (s) => "'" + s.replaceAll("'", "'\\''") + "'";

// How curl reaches the instance on show as one of its clients: its listener, its Host name,
// or a loopback source address it recognises; else the command says whose client to run it on.
function clientOf() {
  const out = { base: ui.imds, flags: "", as: "" };
  if (!ui.fleetMode || !ui.instance) return out;
  const entry = (ui.fleet || []).find((i) => i.name === ui.instance);
  const match = (entry && entry.match) || {};
  const how = [];
  for (const spec of match.listener || []) {
    const m = /^(?:(.+):)?(\d+)$/.exec(String(spec).trim());
    if (!m) continue;
    const host = m[1] && m[1].replace(/^0\.0\.0\.0$/, "127.0.0.1").replace(/^\[::\]$/, "[::1]");
    out.base = host ? `http://${host}:${m[2]}` : ui.imds.replace(/:\d+$/, ":" + m[2]);
    how.push(`to its listener ${spec}`);
    break;
  }
  if (!how.length) {
    for (const spec of match.host || []) {
      out.flags += ` -H ${quote("Host: " + spec)}`;
      how.push(`with Host ${spec}`);
      break;
    }
  }
  if (!how.length) {
    for (const spec of match.source || []) {
      const address = String(spec).replace(/\/32$/, "");
      if (/^127\.\d+\.\d+\.\d+$/.test(address)) {
        out.flags += ` --interface ${address}`;
        how.push(`from ${address}`);
        break;
      }
    }
  }
  if (!how.length && match.source && match.source.length) how.push(`run it on a client at ${match.source.join(", ")}`);
  out.as = ` · as a client of ${ui.instance}` + (how.length ? ` (${how.join(", ")})` : "");
  return out;
}

function curlFor(path) {
  const { base, flags } = clientOf();
  return (
    `TOKEN=$(curl -s${flags} -X PUT ${quote(base + "/latest/api/token")} -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600') && ` +
    `curl -s${flags} -H "X-aws-ec2-metadata-token: $TOKEN" ${quote(base + "/latest/" + enc(path))}`
  );
}

async function showLeaf(path) {
  const gen = ui.gen;
  ui.leaf = path;
  for (const b of document.querySelectorAll(".tree .leaf")) {
    b.setAttribute("aria-current", String(b.dataset.path === path));
  }
  $("edit-path").value = path;
  $("leaf-path").textContent = path;
  $("leaf-curl").value = curlFor(path);
  $("leaf-curl-as").textContent = clientOf().as;
  $("leaf-copy").disabled = false;
  $("leaf-result").textContent = "";
  try {
    const data = await api("GET", mine("/v1/metadata/" + enc(path)));
    if (gen !== ui.gen) return;
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
    act(out, () => api("PUT", mine("/v1/metadata/" + enc(path)), { value }), (r) => `${r.path} now serves the new value`);
  });
  $("edit-delete").addEventListener("click", () => {
    const path = $("edit-path").value.trim();
    act(out, () => api("DELETE", mine("/v1/metadata/" + enc(path))), (r) => `${r.path} is no longer served`);
  });
  $("edit-reset").addEventListener("click", () =>
    act(out, () => api("DELETE", mine("/v1/metadata")), () => "Every edit dropped: the instance is served as configured"),
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
            onclick: () => act($("scenarios-result"), () => api("DELETE", mine("/v1/scenarios/" + encodeURIComponent(s.id))), () => `Cancelled ${s.id}${onWhich()}`),
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
      act($("start-result"), () => api("POST", mine("/v1/scenarios"), body), (s) => `Started ${s.type} ${s.id}${onWhich()}`);
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

// -- fleet ------------------------------------------------------------------------------------

// Fleet mode follows /v1/state: a mock serving a fleet names its instances there. Without
// them the page is the single instance's, and asks nothing of the fleet routes.
function setFleet(names) {
  const on = Array.isArray(names);
  if (on !== ui.fleetMode) {
    ui.fleetMode = on;
    $("tab-fleet").hidden = !on;
    $("instance-picker").hidden = !on;
    $("log-instance-filter").hidden = !on;
    $("log-instance-col").hidden = !on;
    for (const note of document.querySelectorAll("[data-fleet-note]")) note.hidden = !on;
    if (!on) {
      ui.fleet = null;
      for (const el of document.querySelectorAll("[data-of]")) el.textContent = "";
      if (ui.instance) choose(null, false);
      if (view === "fleet") showTab("instance", false);
    }
    renderLog();
    drawReport();
  }
  if (!on) return;
  const known = JSON.stringify(names);
  if ($("instance-select").dataset.names !== known) {
    $("instance-select").dataset.names = known;
    const option = (name) => h("option", { value: name, text: name });
    fill($("instance-select"), ...names.map(option));
    const filter = field($("log-filters"), "instance");
    const kept = filter.value;
    fill(filter, h("option", { value: "", text: "any" }), ...names.map((name) => h("option", { value: name, text: name })));
    filter.value = names.includes(kept) ? kept : "";
    $("fleet-count").textContent = `(${names.length})`;
  }
  $("instance-select").value = shown();
  if (ui.wanted !== undefined) {
    // The instance the address named, once the fleet is known; a fleet page opened with no
    // view named (or the Fleet view, unknown until now) starts on the Fleet view.
    const wanted = ui.wanted;
    ui.wanted = undefined;
    if (!ui.wantedView || ui.wantedView === "fleet") showTab("fleet", false);
    if (wanted && !names.includes(wanted)) {
      say($("fleet-result"), `No instance named ${wanted}: showing the default instance`, false);
    } else if (wanted) choose(wanted, false);
  }
}

// Show instance `name` (null or "default": the default one) in every view; `follow` also
// narrows the request log to it (a choice the user made).
function choose(name, follow) {
  const next = name && name !== "default" ? name : null;
  if (follow && ui.fleetMode) {
    field($("log-filters"), "instance").value = next || "default";
    renderLog();
    drawReport();
  }
  if (next === ui.instance) return;
  ui.instance = next;
  ui.gen++;
  for (const key of Object.keys(drawn)) delete drawn[key];
  ui.leaf = null;
  $("leaf-path").textContent = "Choose a leaf in the tree.";
  $("leaf-value").textContent = "";
  $("leaf-curl").value = "";
  $("leaf-curl-as").textContent = "";
  $("leaf-copy").disabled = true;
  buildTree();
  for (const out of document.querySelectorAll("output.result")) if (out.id !== "fleet-result") out.textContent = "";
  fill($("identity"));
  $("headline").textContent = `Loading ${shown()}…`;
  $("instance-select").value = shown();
  for (const el of document.querySelectorAll("[data-of]")) el.textContent = ui.fleetMode ? ` · ${shown()}` : "";
  writeHash();
  if (ui.fleet) renderFleet();
  refreshClients();
  refreshState();
}

async function refreshFleet() {
  let data;
  try {
    data = await api("GET", "/v1/instances");
  } catch (error) {
    if (error.status !== 401) say($("fleet-result"), error.message, false);
    return;
  }
  ui.fleet = data.instances;
  for (const el of document.querySelectorAll("[data-of]")) el.textContent = ` · ${shown()}`;
  renderFleet();
  refreshClients();
}

// What a fleet instance's scenarios serve now and next, one line each.
function running(scenarios) {
  const now = mockNow();
  return scenarios.map((s) => {
    const all = points(s).sort((a, b) => a.t - b.t);
    const past = all.filter((p) => p.t <= now);
    const next = all.find((p) => p.t > now);
    const parts = [];
    if (past.length) parts.push(`now ${past[past.length - 1].what}`);
    if (next) parts.push(`next ${next.what} in ${duration(next.t - now)}`);
    return { live: past.length > 0, id: s.id, text: `${s.type}: ${parts.join("; ") || "done"}` };
  });
}

function matchText(instance) {
  if (instance.default) {
    const refused = ui.state && ui.state.config.fleet && ui.state.config.fleet.unknown === "reject";
    return refused ? "nobody (a client no rule matches is refused)" : "any client no rule matches";
  }
  const rules = Object.entries(instance.match).map(([kind, specs]) => `${kind} ${specs.map(rule).join(", ")}`);
  if (instance.template) rules.push(`made by the template for ${instance.template}`);
  return rules.join("; ") || "no rule";
}

// A match rule as text: as is, or a pod rule as NAMESPACE/NAME[LABELS] (* for what it leaves open).
function rule(spec) {
  if (spec === null || typeof spec !== "object") return String(spec);
  const labels = Object.entries(spec.labels || {}).map(([k, v]) => `${k}=${v}`);
  return `${spec.namespace || "*"}/${spec.name || "*"}` + (labels.length ? `[${labels.join(",")}]` : "");
}

function renderFleet() {
  const rows = ui.fleet.map((i) => {
    const chosen = i.name === shown();
    const lines = running(i.running || []);
    return { i, chosen, lines };
  });
  if (!changed("fleet", [rows, ui.state && ui.state.config.fleet])) return;
  fill(
    $("fleet-rows"),
    ...rows.map(({ i, chosen, lines }) =>
      h(
        "tr",
        { class: chosen ? "chosen" : null, "data-name": i.name },
        h(
          "th",
          { scope: "row" },
          h("button", { type: "button", class: "quiet pick", "aria-pressed": String(chosen), "aria-label": `Show ${i.name}`, text: i.name, onclick: () => choose(i.name, true) }),
        ),
        h("td", { class: "mono nowrap", text: i["instance-id"] }),
        h("td", { class: "mono nowrap", text: i["iam-role"] || "none" }),
        h("td", { class: "match", text: matchText(i) }),
        h(
          "td",
          { class: "running" },
          ...(lines.length ? lines.map((l) => h("div", { class: l.live ? "live" : null, title: l.id, text: l.text })) : [h("span", { class: "note", text: "none" })]),
        ),
        h(
          "td",
          { class: "num" },
          h("button", {
            type: "button",
            class: "quiet",
            "aria-label": `Requests of ${i.name}: ${i.requests || 0}`,
            text: String(i.requests || 0),
            onclick: () => {
              choose(i.name, true);
              showTab("requests", false);
            },
          }),
        ),
        h("td", { class: "num", text: String(i.clients) }),
      ),
    ),
  );
}

async function refreshClients() {
  if (!ui.fleetMode || view !== "fleet") return;
  const gen = ui.gen;
  const name = shown();
  $("clients-of").textContent = name;
  let data;
  try {
    data = await api("GET", `/v1/instances/${encodeURIComponent(name)}/clients`);
  } catch (error) {
    if (gen === ui.gen && error.status !== 401) say($("clients-result"), error.message, false);
    return;
  }
  if (gen !== ui.gen || !changed("clients", data.clients)) return;
  $("clients-result").textContent = "";
  const time = (t) => new Date(t * 1000).toISOString().slice(0, 23).replace("T", " ");
  fill(
    $("client-rows"),
    ...(data.clients.length
      ? data.clients.map((c) =>
          h(
            "tr",
            {},
            h("td", { class: "client", text: c.client }),
            h("td", { text: c.why }),
            h("td", { class: "num", text: String(c.connections) }),
            h("td", { class: "time", text: time(c.first) }),
            h("td", { class: "time", text: time(c.last) }),
          ),
        )
      : [h("tr", {}, h("td", { colspan: 5, class: "note", text: `No client has been served as ${name} yet.` }))]),
  );
}

function wireFleet() {
  $("instance-select").addEventListener("change", (event) => choose(event.target.value, true));
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
  wireFleet();
  if (ui.token) $("token-forget").hidden = false;
  refreshState();
  stateLoop();
  logLoop();
}

start();
