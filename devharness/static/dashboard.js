// The harness's dashboard: functions, API explorer, live request log, servers and data.
// Plain JavaScript, no framework, no network access beyond this harness. Text from the server is
// always set as text (never as HTML): facts may come from an upstream API.
"use strict";

const API = "/_dashboard/api/";
const LOG_KEEP = 500;          // lines kept in memory; older ones scroll away
const FUNCTIONS_EVERY_MS = 1000;
const SERVERS_EVERY_MS = 2000;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

async function getJson(path) {
  const response = await fetch(API + path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function setConnection(text, ok) {
  const node = document.getElementById("connection");
  node.textContent = text;
  node.className = ok ? "" : "warn";
}

// --- functions --------------------------------------------------------------------------------

let knownFunctions = [];

function functionState(fn) {
  if (fn.loaded) return el("td", { class: "ok", text: "loaded" });
  const err = fn.error || {};
  return el("td", {},
    el("span", { class: "bad", text: "failed to load" }),
    el("span", { class: "error-detail", text: err.message || "unknown error" }),
    el("span", { class: "error-where", text: err.line ? `${fn.source}, line ${err.line}` : fn.source }));
}

async function refreshFunctions() {
  try {
    const answer = await getJson("functions");
    knownFunctions = answer.functions;
    replaceRows(document.getElementById("functions-rows"), answer.functions.map((fn) =>
      el("tr", { "data-path": fn.path },
        el("td", {}, el("code", { text: fn.path })),
        el("td", { text: fn.target }),
        el("td", {}, el("code", { text: fn.source })),
        functionState(fn))));
    document.getElementById("functions-note").textContent = answer.reload
      ? "--reload is on: a fix to a function shows here within a second or two."
      : "Without --reload, restart the harness to load changes.";
    setConnection("connected", true);
    addUndescribedFunctions();
  } catch (error) {
    setConnection("harness not answering (restarting?) — retrying", false);
  }
}

// --- Cloud Run (serve --like cloud-run) ---------------------------------------------------------

const PLATFORM_EVERY_MS = 1000;

async function postJson(path, body) {
  const response = await fetch(API + path, {
    method: "POST", cache: "no-store", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((answer.error && answer.error.message) || `HTTP ${response.status}`);
  return answer;
}

function seconds(value) {
  return value === null || value === undefined ? "…" : `${Number(value).toFixed(2)} s`;
}

async function press(path, body) {
  const note = document.getElementById("platform-note");
  try {
    await postJson(path, body);
    note.textContent = "";
  } catch (error) {
    note.textContent = String(error.message || error);
  }
  await refreshPlatform();
}

function serviceBlock(service) {
  const limits = service.limits;
  const rows = service.instances.map((inst) =>
    el("tr", { "data-instance": inst.name, "data-state": inst.state },
      el("td", {}, el("code", { text: inst.name })),
      el("td", { class: `state-${inst.state}`, text: inst.state }),
      el("td", { class: "num", text: String(inst.in_flight) }),
      el("td", {}, inst.state === "stopped" ? "" : (() => {
        const button = el("button", { type: "button", class: "evict", text: "Evict" });
        button.addEventListener("click", () => press("platform/evict", { instance: inst.name }));
        return button;
      })())));
  return el("div", { class: "service", "data-route": service.route },
    el("p", { class: "service-line" },
      el("strong", { text: `/${service.route}` }),
      el("span", { text: ` revision ${service.revision} · ` }),
      el("span", { class: "in-flight", text: `${service.in_flight} in flight` }),
      el("span", { text: " · " }),
      el("span", { class: "queued", text: `${service.queued} queued` }),
      el("span", { class: "note", text: ` · up to ${limits.max_instances} instances × ${limits.concurrency}, timeout ${limits.request_timeout_s} s, stopped after ${limits.idle_stop_s} s idle` })),
    el("table", { "aria-label": `Instances of /${service.route}` },
      el("thead", {}, el("tr", {}, el("th", { text: "Instance" }), el("th", { text: "State" }),
        el("th", { class: "num", text: "In flight" }), el("th", { text: "" }))),
      el("tbody", {}, ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "4", class: "note", text: "no instance: the next request starts one (a cold start)" }))]))));
}

function faultButtons(platform) {
  if (!platform.faults) return [el("p", { class: "note", text: "These servers are not the harness's own (external): no fault buttons." })];
  return Object.entries(platform.servers).map(([server, state]) =>
    el("div", { class: "row fault", "data-server": server },
      el("strong", { text: server }),
      el("span", { class: `server-state state-${state}`, text: state }),
      ...["freeze", "thaw", "stop", "start"].map((action) => {
        const button = el("button", { type: "button", "data-action": action, text: `${action[0].toUpperCase()}${action.slice(1)}` });
        button.addEventListener("click", () => press("platform/fault", { server, action }));
        return button;
      })));
}

let faultsShown = "";

async function refreshPlatform() {
  let platform;
  try {
    platform = await getJson("platform");
  } catch (error) {
    return;
  }
  const section = document.getElementById("platform");
  section.hidden = platform.mode !== "cloud-run";
  if (section.hidden) return;
  document.getElementById("platform-services").replaceChildren(...platform.services.map(serviceBlock));
  const colds = platform.services.flatMap((service) => service.cold_starts);
  replaceRows(document.getElementById("cold-rows"), colds.map((cold) =>
    el("tr", { "data-instance": cold.instance },
      el("td", {}, el("code", { text: cold.instance })),
      el("td", { class: cold.outcome === "failed" ? "bad" : cold.outcome === "served" || cold.outcome === "ready" ? "ok" : "warn", text: cold.outcome }),
      el("td", { class: "num", text: seconds(cold.process_s) }),
      el("td", { class: "num", text: seconds(cold.imports_s) }),
      el("td", { class: "num", text: seconds(cold.first_answer_s) }),
      el("td", { class: "num", text: seconds(cold.connections_s) }),
      el("td", { class: "num", text: seconds(cold.total_s) }))));
  // Redrawn only when the states change, so a button is not replaced under the pointer.
  const shown = JSON.stringify([platform.faults, platform.servers]);
  if (shown !== faultsShown) {
    faultsShown = shown;
    document.getElementById("fault-buttons").replaceChildren(...faultButtons(platform));
  }
}

// --- servers and data -------------------------------------------------------------------------

function health(value) {
  return el("span", { class: value === "ok" ? "ok" : "bad", text: value || "unknown" });
}

function dd(...children) { return el("dd", {}, ...children); }

async function refreshServers() {
  let answer;
  try {
    answer = await getJson("servers");
  } catch (error) {
    return;  // the connection line already says the harness is not answering
  }
  const list = document.getElementById("servers-list");
  const items = [
    el("dt", { text: "servers" }), dd(el("strong", { text: answer.kind || "?" })),
    el("dt", { text: "where" }), dd(answer.description || ""),
  ];
  if (answer.error) items.push(el("dt", { text: "error" }), dd(el("span", { class: "bad", text: answer.error })));
  if (answer.postgres) {
    items.push(el("dt", { text: "Postgres" }), dd(health(answer.postgres.health), " ", el("code", { text: answer.postgres.where })));
  }
  if (answer.redis) {
    items.push(el("dt", { text: "Redis" }), dd(health(answer.redis.health), " ", el("code", { text: answer.redis.where }),
      ` (key prefix ${answer.redis.key_prefix})`));
  }
  list.replaceChildren(...items);
  const data = answer.data || {};
  document.getElementById("data-day").textContent = data.day ? `(${data.day}, UTC)` : "";
  const today = new Map((data.today || []).map((row) => [row.language, row]));
  replaceRows(document.getElementById("today-rows"), (data.languages || []).map((language) => {
    const row = today.get(language);
    return el("tr", { "data-language": language },
      el("td", { text: language }),
      el("td", { text: row ? row.fact : "not chosen yet (the first /today request of the day chooses it)" }),
      el("td", { class: "num views", text: row ? String(row.views) : "–" }));
  }));
  replaceRows(document.getElementById("top-rows"), (data.most_viewed || []).map((row) =>
    el("tr", {}, el("td", { class: "num", text: String(row.views) }), el("td", { text: row.language }), el("td", { text: row.fact }))));
  replaceRows(document.getElementById("catalogue-rows"), Object.entries(data.catalogue || {}).map(([language, n]) =>
    el("tr", {}, el("td", { text: language }), el("td", { class: "num", text: String(n) }))));
  replaceRows(document.getElementById("key-rows"), (data.cache_keys || []).map((key) =>
    el("tr", {}, el("td", {}, el("code", { text: key.key })), el("td", { class: "num", text: `${key.ttl_s} s` }),
      el("td", {}, el("code", { text: key.fact_id || "?" })))));
  const notes = [data.postgres_error, data.redis_error].filter(Boolean);
  if (!(data.cache_keys || []).length && !data.redis_error) notes.push("No key for today in Redis yet.");
  notes.push("Views lag after a browser revalidation: a 304 counts a view, but the page's script gets the cached body.");
  document.getElementById("data-note").textContent = notes.join(" ");
}

// --- API explorer -----------------------------------------------------------------------------

const METHODS = ["get", "head", "options", "post", "put", "patch", "delete"];
let spec = { paths: {}, components: {} };
let headerRowCount = 0;

function resolve(ref) {
  if (!ref || !ref.$ref) return ref;
  return ref.$ref.replace(/^#\//, "").split("/").reduce((node, key) => (node || {})[key], spec);
}

function pathOptions() {
  const select = document.getElementById("explorer-path");
  const current = select.value;
  const options = Object.keys(spec.paths).map((path) => {
    const fn = knownFunctions.find((f) => f.path === path);
    return el("option", { value: path, text: fn ? `${path} (${fn.target})` : path });
  });
  select.replaceChildren(...options);
  if (current) select.value = current;
}

// A function that openapi.json does not describe still gets a plain GET in the explorer.
function addUndescribedFunctions() {
  let added = false;
  for (const fn of knownFunctions) {
    if (!spec.paths[fn.path]) {
      spec.paths[fn.path] = { get: { summary: `${fn.target} (not in openapi.json)`, parameters: [] } };
      added = true;
    }
  }
  if (added) { pathOptions(); methodOptions(); }
}

function operation() {
  const path = document.getElementById("explorer-path").value;
  const method = document.getElementById("explorer-method").value;
  return (spec.paths[path] || {})[method] || {};
}

function methodOptions() {
  const path = document.getElementById("explorer-path").value;
  const select = document.getElementById("explorer-method");
  const current = select.value;
  const methods = METHODS.filter((m) => (spec.paths[path] || {})[m]);
  select.replaceChildren(...methods.map((m) => el("option", { value: m, text: m.toUpperCase() })));
  if (methods.includes(current)) select.value = current;
  parameterFields();
}

function parameterInput(param) {
  const id = `param-${param.in}-${param.name}`;
  const schema = param.schema || {};
  let input;
  if (schema.enum) {
    input = el("select", { id, "data-param": param.name, "data-in": param.in },
      el("option", { value: "", text: "(not sent)" }), ...schema.enum.map((v) => el("option", { value: v, text: v })));
    if (schema.default !== undefined) input.value = schema.default;
  } else {
    input = el("input", { id, type: "text", "data-param": param.name, "data-in": param.in, autocomplete: "off" });
    if (param.example) input.placeholder = param.example;
  }
  if (param.description) input.title = param.description;
  return el("span", { class: "param" }, el("label", { for: id, text: param.name }), input);
}

function parameterFields() {
  const params = (operation().parameters || []).map(resolve).filter(Boolean);
  const query = params.filter((p) => p.in === "query").map(parameterInput);
  const headers = params.filter((p) => p.in === "header").map(parameterInput);
  document.getElementById("query-fields").replaceChildren(...(query.length ? query : [el("span", { class: "note", text: "no query parameters" })]));
  document.getElementById("header-fields").replaceChildren(...headers);
}

function addHeaderRow() {
  headerRowCount += 1;
  const n = headerRowCount;
  const row = el("div", { class: "header-row" },
    el("input", { type: "text", class: "header-name", "aria-label": `Header ${n} name`, placeholder: "Name", autocomplete: "off" }),
    el("input", { type: "text", class: "header-value", "aria-label": `Header ${n} value`, placeholder: "Value", autocomplete: "off" }));
  const remove = el("button", { type: "button", "aria-label": `Remove header ${n}`, text: "Remove" });
  remove.addEventListener("click", () => { row.remove(); document.getElementById("add-header").focus(); });
  row.append(remove);
  document.getElementById("header-rows").append(row);
  row.querySelector("input").focus();
}

async function send(event) {
  event.preventDefault();
  const path = document.getElementById("explorer-path").value;
  const method = document.getElementById("explorer-method").value.toUpperCase();
  const query = new URLSearchParams();
  const headers = new Headers();
  for (const input of document.querySelectorAll("#explorer-form [data-param]")) {
    if (!input.value) continue;
    if (input.dataset.in === "query") query.append(input.dataset.param, input.value);
    else headers.set(input.dataset.param, input.value);
  }
  for (const row of document.querySelectorAll("#header-rows .header-row")) {
    const name = row.querySelector(".header-name").value.trim();
    if (name) {
      try { headers.set(name, row.querySelector(".header-value").value); } catch (error) { return showError(`bad header: ${name}`); }
    }
  }
  const url = path + (query.toString() ? `?${query}` : "");
  const status = document.getElementById("result-status");
  status.textContent = `${method} ${url} …`;
  status.className = "";
  const started = performance.now();
  let response, body;
  try {
    // no-store: the explorer shows what the function answers, not what the browser cached.
    response = await fetch(url, { method, headers, cache: "no-store" });
    body = await response.text();
  } catch (error) {
    return showError(`request failed: ${error.message}`);
  }
  const latency = performance.now() - started;
  status.textContent = `${response.status} ${response.statusText}`;
  status.className = response.ok || response.status === 304 ? "ok" : "bad";
  document.getElementById("result-latency").textContent = `${latency.toFixed(1)} ms`;
  const rows = [...response.headers.entries()].sort().map(([name, value]) =>
    el("tr", {}, el("td", { text: name }), el("td", {}, el("code", { text: value }))));
  replaceRows(document.querySelector("#result-headers tbody"), rows);
  let shown = body;
  try { if (body) shown = JSON.stringify(JSON.parse(body), null, 2); } catch (error) { /* not JSON: shown as is */ }
  document.getElementById("result-body").textContent = shown || "(no body)";
}

function showError(message) {
  const status = document.getElementById("result-status");
  status.textContent = message;
  status.className = "bad";
}

async function setUpExplorer() {
  // Header rows need no description: a click before openapi.json arrives still adds one.
  document.getElementById("add-header").addEventListener("click", addHeaderRow);
  try {
    const response = await fetch("/openapi.json", { cache: "no-store", headers: { Accept: "application/json" } });
    spec = await response.json();
  } catch (error) {
    spec = { paths: {}, components: {} };
  }
  pathOptions();
  methodOptions();
  addUndescribedFunctions();
  document.getElementById("explorer-path").addEventListener("change", methodOptions);
  document.getElementById("explorer-method").addEventListener("change", parameterFields);
  document.getElementById("explorer-form").addEventListener("submit", send);
}

// --- live request log -------------------------------------------------------------------------

const lines = [];
let lastSeq = 0;
let paused = false;
let missed = 0;
let renderQueued = false;

function lineText(line) {
  return [line.function, line.instance || "", line.method, line.path, line.status, line.cache || ""].join(" ").toLowerCase();
}

function render() {
  renderQueued = false;
  if (paused) return;
  const filter = document.getElementById("log-filter").value.trim().toLowerCase();
  const shown = lines.filter((line) => !filter || lineText(line).includes(filter)).slice(-200).reverse();
  replaceRows(document.getElementById("log-rows"), shown.map((line) =>
    // Platform events (function "cloud-run": cold starts, stops, faults, deploys) sit among the requests.
    el("tr", { "data-seq": String(line.seq), class: line.function === "cloud-run" ? "platform-event" : "" },
      el("td", { class: "mono", text: new Date(line.time * 1000).toLocaleTimeString([], { hour12: false }) }),
      el("td", {}, line.function, ...(line.instance ? [el("span", { class: "instance", text: line.instance })] : [])),
      el("td", { text: line.method }),
      el("td", {}, el("code", { text: line.path })),
      el("td", { class: line.status >= 500 ? "bad" : line.status >= 400 ? "warn" : "ok", text: line.status ? String(line.status) : "" }),
      el("td", { class: "num", text: line.status ? `${Number(line.latency_ms).toFixed(1)} ms` : "" }),
      el("td", { text: line.cache || "" }))));
  document.getElementById("log-dropped").textContent = missed ? `${missed} lines missed (the log keeps the last 1000)` : "";
}

function queueRender() {
  if (!renderQueued) { renderQueued = true; requestAnimationFrame(render); }
}

function connectLog() {
  const state = document.getElementById("log-state");
  const source = new EventSource(`${API}events?after=${lastSeq}`);
  source.onopen = () => { state.textContent = "connected"; state.className = ""; };
  source.onmessage = (event) => {
    const line = JSON.parse(event.data);
    lastSeq = Math.max(lastSeq, line.seq);
    lines.push(line);
    if (lines.length > LOG_KEEP) lines.splice(0, lines.length - LOG_KEEP);
    queueRender();
  };
  source.addEventListener("status", (event) => {
    const status = JSON.parse(event.data);
    if (status.error) { state.textContent = status.error; state.className = "bad"; return; }
    // The first status follows the backlog: from here on, lines arrive as they happen.
    state.textContent = "live";
    state.className = "ok";
    missed += status.missed || 0;
    // With several gunicorn workers, each keeps its own log: say whose lines these are.
    document.getElementById("log-scope").textContent = status.scope || "";
    queueRender();
  });
  source.onerror = () => {
    state.textContent = "reconnecting";
    state.className = "warn";
    // EventSource retries by itself after a dropped stream; after a refused one it gives up.
    if (source.readyState === EventSource.CLOSED) setTimeout(connectLog, 2000);
  };
}

function setUpLog() {
  document.getElementById("log-filter").addEventListener("input", queueRender);
  const pause = document.getElementById("log-pause");
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    queueRender();
  });
  document.getElementById("log-clear").addEventListener("click", () => { lines.length = 0; queueRender(); });
  connectLog();
}

// --- start ------------------------------------------------------------------------------------

function every(ms, task) {
  const run = async () => { await task(); setTimeout(run, ms); };
  run();
}

document.addEventListener("DOMContentLoaded", async () => {
  setUpLog();
  await refreshFunctions();
  await setUpExplorer();
  every(FUNCTIONS_EVERY_MS, refreshFunctions);
  every(SERVERS_EVERY_MS, refreshServers);
  every(PLATFORM_EVERY_MS, refreshPlatform);
});
