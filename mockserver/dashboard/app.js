// The mock's dashboard: everything it shows and does goes through the control API (/_mock/...), so it works
// on a remote mock too. No framework and no build step: plain DOM, text only (never innerHTML), so nothing
// a request carried can run as markup.

const CONTROL = new URL("../", import.meta.url); // /_mock/
const TOKEN_KEY = "mockserver.controlToken";
const MAX_ROWS = 500; // rows the request table keeps (the journal itself keeps more)

const state = {
  providers: [],
  entries: [], // newest last
  operations: new Set(),
  clock: { offset: 0 },
  refreshTimer: 0,
};

// -- small helpers ---------------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (selector) => document.querySelector(selector);

function fill(tbody, rows, emptyText, columns) {
  // Never redraw a table under someone typing in it: a refresh would throw their unsent edit away.
  const active = document.activeElement;
  if (active?.tagName === "INPUT" && tbody.contains(active) && active.value !== active.defaultValue) return;
  tbody.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: columns, class: "muted" }, emptyText))]));
}

function mask(key) {
  return key.length > 12 ? `${key.slice(0, 8)}…${key.slice(-4)}` : "•••";
}

function isoTime(seconds) {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function money(cents) {
  return cents === null || cents === undefined ? "not billed" : `${cents} ¢ ($${(cents / 100).toFixed(2)})`;
}

let noticeTimer = 0;
function notify(text, kind = "info") {
  const notice = $("#notice");
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { notice.hidden = true; }, 6000);
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (plain http on a remote host): the old way still works from a click.
    const area = h("textarea", { class: "sr-only", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  notify(`${what} copied`);
}

// -- the control API -------------------------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function askToken() {
  // One dialog at a time; every caller waiting for a token shares it.
  if (askToken.pending) return askToken.pending;
  const dialog = $("#token-dialog");
  askToken.pending = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const value = $("#token-input").value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      askToken.pending = null;
      resolve(Boolean(value));
    }, { once: true });
    dialog.showModal();
  });
  return askToken.pending;
}

function headers(json) {
  const found = {};
  if (json) found["Content-Type"] = "application/json";
  const current = token();
  if (current) found.Authorization = `Bearer ${current}`;
  return found;
}

async function api(method, path, body) {
  const changing = method !== "GET";
  for (;;) {
    const response = await fetch(new URL(path, CONTROL), {
      method,
      headers: headers(changing),
      body: changing ? JSON.stringify(body ?? {}) : undefined,
      cache: "no-store",
    });
    if (response.status === 401 && (await askToken())) continue;
    const data = response.headers.get("Content-Type")?.includes("json") ? await response.json() : null;
    if (!response.ok) {
      const message = data?.error?.message ?? `${response.status} ${response.statusText}`;
      throw new Error(`${method} /_mock/${path}: ${message}`);
    }
    return data;
  }
}

async function act(label, action) {
  try {
    await action();
    notify(label);
  } catch (error) {
    notify(error.message, "error");
  }
  await refreshAll();
}

// -- providers -------------------------------------------------------------------------------------------

function curlFor(provider, spec) {
  // A call that works as pasted, from the provider's own spec: the first POST with a documented example body
  // (else the first GET), without path parameters but the organization, and the spec's credential header.
  const scheme = Object.keys(spec?.security?.[0] ?? {})[0];
  const declared = spec?.components?.securitySchemes?.[scheme];
  const header = declared?.type === "apiKey" && declared.in === "header" ? `${declared.name}: ` : "Authorization: Bearer ";
  let call = { path: "/", body: null };
  const candidates = [];
  for (const [template, item] of Object.entries(spec?.paths ?? {})) {
    if ((template.match(/\{[^}]+\}/g) ?? []).some((p) => p !== "{organization_id}")) continue;
    const path = template.replace("{organization_id}", provider.organization_id ?? "");
    const media = item.post?.requestBody?.content?.["application/json"];
    const example = media?.example ?? Object.values(media?.examples ?? {})[0]?.value;
    if (example !== undefined) candidates.push({ rank: 0, path, body: example });
    else if (item.get) candidates.push({ rank: 1, path, body: null });
  }
  candidates.sort((a, b) => a.rank - b.rank);
  if (candidates.length) call = candidates[0];
  return (key) => {
    const parts = [`curl -s ${provider.base_url}${call.path}`, `-H "${header}${key}"`];
    if (call.body !== null) {
      const json = JSON.stringify(call.body).replaceAll("'", "'\\''");
      parts.push(`-H "Content-Type: application/json" -d '${json}'`);
    }
    return parts.join(" ");
  };
}

async function loadProviders() {
  const { providers } = await api("GET", "providers");
  state.providers = providers;
  const cards = await Promise.all(providers.map(async (provider) => {
    let spec = null;
    try {
      spec = await (await fetch(`${provider.base_url}/openapi.json`)).json();
      for (const item of Object.values(spec.paths ?? {})) {
        for (const op of Object.values(item)) if (op?.operationId) state.operations.add(op.operationId);
      }
    } catch { /* the curl line falls back to the base URL */ }
    const curl = curlFor(provider, spec);
    return h("article", { class: "card", "data-provider": provider.id },
      h("h3", {}, provider.id),
      h("dl", {},
        h("dt", {}, "Base URL"), h("dd", {}, h("code", { class: "base-url" }, provider.base_url)),
        h("dt", {}, "API key"), h("dd", {},
          h("code", { class: "masked-key" }, mask(provider.api_key)), " ",
          h("button", { type: "button", class: "small", "aria-label": `Copy the ${provider.id} API key`,
            onclick: () => copy(provider.api_key, `${provider.id} key`) }, "Copy key")),
        provider.organization_id ? [h("dt", {}, "Organization"), h("dd", {}, h("code", {}, provider.organization_id))] : [],
        h("dt", {}, "Spec"), h("dd", {},
          h("a", { href: `${provider.base_url}/openapi.json` }, "openapi.json"), " · ",
          h("a", { href: `${provider.base_url}/openapi.yaml` }, "openapi.yaml"))),
      h("div", { class: "curl" },
        h("code", { class: "curl-line" }, curl(mask(provider.api_key))),
        h("button", { type: "button", class: "small", "aria-label": `Copy a curl command for ${provider.id}`,
          onclick: () => copy(curl(provider.api_key), "curl command") }, "Copy curl")));
  }));
  $("#provider-list").replaceChildren(...cards);
  for (const select of document.querySelectorAll(".provider-select, #filter-provider")) {
    const keep = select.value;
    const first = select.querySelector("option[value='']");
    select.replaceChildren(...(first ? [first] : []), ...providers.map((p) => h("option", { value: p.id }, p.id)));
    if (keep) select.value = keep;
  }
  updateOperations();
}

// -- requests ----------------------------------------------------------------------------------------

function updateOperations() {
  $("#operation-ids").replaceChildren(...[...state.operations].sort().map((op) => h("option", { value: op })));
}

function matches(entry) {
  const provider = $("#filter-provider").value;
  const status = $("#filter-status").value;
  const operation = $("#filter-operation").value.trim().toLowerCase();
  if (provider && entry.provider !== provider) return false;
  if (status === "violation" && !entry.violations?.length) return false;
  if (status && status !== "violation" && String(entry.status)[0] !== status) return false;
  return !operation || (entry.operation_id ?? "").toLowerCase().includes(operation);
}

function requestRow(entry) {
  const flagged = entry.violations?.length > 0;
  return h("tr", { "data-id": entry.id, class: `status-${String(entry.status)[0]}xx${flagged ? " violation" : ""}` },
    h("td", {}, h("button", { type: "button", class: "link", "aria-label": `Open request ${entry.id}`,
      onclick: () => openDetail(entry) }, `#${entry.id}`)),
    h("td", {}, h("time", { datetime: isoTime(entry.time) }, isoTime(entry.time).slice(11, 19))),
    h("td", {}, entry.provider),
    h("td", { class: "path" }, `${entry.method} ${entry.path}`),
    h("td", {}, entry.operation_id ?? "—"),
    h("td", {}, h("span", { class: "status" }, entry.status),
      flagged ? h("span", { class: "flag", title: entry.violations.join("\n") }, " ⚠ spec violation") : null),
    h("td", { class: "num" }, entry.latency_ms.toFixed(1)));
}

function renderRequests() {
  const shown = state.entries.filter(matches).reverse();
  fill($("#request-table tbody"), shown.map(requestRow), "No requests yet: call a provider and it appears here.", 7);
  $("#request-count").textContent = `${shown.length} of ${state.entries.length} shown`;
}

function addEntry(entry) {
  state.entries.push(entry);
  if (state.entries.length > MAX_ROWS) state.entries.shift();
  if (entry.operation_id && !state.operations.has(entry.operation_id)) {
    state.operations.add(entry.operation_id);
    updateOperations();
  }
  if (!matches(entry)) {
    renderRequests();
    return;
  }
  const tbody = $("#request-table tbody");
  if (tbody.querySelector("td[colspan]")) renderRequests();
  else {
    tbody.prepend(requestRow(entry));
    while (tbody.rows.length > MAX_ROWS) tbody.lastElementChild.remove();
    $("#request-count").textContent = `${tbody.rows.length} of ${state.entries.length} shown`;
  }
}

async function loadRequests() {
  const { requests } = await api("GET", `requests?limit=${MAX_ROWS}`);
  const flagged = new Map(state.entries.filter((e) => e.violations?.length).map((e) => [e.id, e.violations]));
  state.entries = requests.map((e) => ({ ...e, violations: flagged.get(e.id) ?? e.violations ?? [] }));
  for (const entry of state.entries) if (entry.operation_id) state.operations.add(entry.operation_id);
  updateOperations();
  renderRequests();
}

function bodyBlock(title, body) {
  let content = "(no body)";
  if (body?.text !== undefined) {
    content = body.text;
    try { content = JSON.stringify(JSON.parse(body.text), null, 2); } catch { /* not JSON: as sent */ }
  } else if (body?.base64 !== undefined) content = `(${body.size} bytes of binary data)`;
  return [h("h4", {}, title, body?.truncated ? ` (first 64 KiB of ${body.size} bytes)` : ""), h("pre", {}, content)];
}

function headerBlock(headers) {
  return h("pre", { class: "headers" }, Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join("\n"));
}

async function openDetail(entry) {
  const body = $("#detail-body");
  $("#detail-title").textContent = `#${entry.id} ${entry.method} ${entry.path} → ${entry.status}`;
  body.replaceChildren(h("p", {}, "Loading…"));
  $("#detail").showModal();
  let detail = null;
  try {
    detail = await api("GET", `requests/${entry.id}`);
  } catch {
    body.replaceChildren(
      h("p", {}, `${entry.provider} · ${entry.operation_id ?? "no operation"} · ${entry.latency_ms.toFixed(1)} ms`),
      h("p", { class: "muted" }, "Bodies are kept for the last 200 requests answered while a dashboard is open; this one is not among them."));
    return;
  }
  const violations = detail.violations?.length ? detail.violations : entry.violations ?? [];
  body.replaceChildren(
    h("p", {}, `${detail.provider} · ${detail.operation_id ?? "no operation"} · ${detail.latency_ms.toFixed(1)} ms · ${isoTime(detail.time)}`),
    ...(violations.length
      ? [h("div", { class: "violation-box", role: "alert" }, h("strong", {}, "Spec violation: "), violations.join("; "))]
      : []),
    h("div", { class: "split" },
      h("div", {}, h("h3", {}, "Request"), h("p", {}, h("code", {}, `${detail.request.method} ${detail.request.path}`)),
        headerBlock(detail.request.headers), ...bodyBlock("Body", detail.request.body)),
      h("div", {}, h("h3", {}, "Response"), h("p", {}, h("code", {}, String(detail.response.status))),
        headerBlock(detail.response.headers),
        ...(detail.response.streamed ? [h("p", { class: "muted" }, "Streamed (server-sent events): the events are not kept.")]
          : bodyBlock("Body", detail.response.body)))));
}

// -- live events -------------------------------------------------------------------------------------

function setLive(text, kind) {
  const badge = $("#live-status");
  badge.textContent = text;
  badge.dataset.kind = kind;
}

function handleEvent(type, data) {
  if (type === "request") {
    addEntry(data.entry);
    scheduleRefresh();
  } else if (type === "violation") {
    const match = [...state.entries].reverse().find((e) => e.provider === data.violation.provider
      && e.operation_id === data.violation.operation_id);
    if (match && !match.violations.includes(data.violation.problem)) {
      match.violations.push(data.violation.problem);
      renderRequests();
    }
  }
}

// Leaving the page ends the stream at once: an open one would hold one of the browser's few connections
// to the mock.
const leaving = new AbortController();
addEventListener("pagehide", () => leaving.abort());

async function listen() {
  // fetch, not EventSource: EventSource cannot send the Authorization header a remote mock asks for.
  for (;;) {
    try {
      const response = await fetch(new URL("events", CONTROL), {
        headers: headers(false), cache: "no-store", signal: leaving.signal,
      });
      if (response.status === 401) {
        await askToken();
        continue;
      }
      if (!response.ok || !response.body) throw new Error(String(response.status));
      setLive("live", "ok");
      await loadRequests(); // what happened before we listened (no gap: we already listen)
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) type = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trim());
          }
          if (data.length && type !== "hello") handleEvent(type, JSON.parse(data.join("\n")));
        }
      }
    } catch { /* fall through: reconnect */ }
    if (leaving.signal.aborted) return;
    setLive("reconnecting", "warn");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// -- resources and webhooks ----------------------------------------------------------------------------

async function loadResources() {
  const { jobs, counts } = await api("GET", "resources");
  fill($("#job-table tbody"), jobs.slice().reverse().map((job) => h("tr", { "data-id": job.id, "data-state": job.state },
    h("td", {}, job.provider), h("td", {}, job.kind), h("td", {}, h("code", {}, job.id)),
    h("td", {}, h("span", { class: `state state-${job.state}` }, job.state)),
    h("td", {}, h("progress", { max: job.tasks, value: job.completed_tasks, "aria-label": `Progress of ${job.id}` }),
      ` ${job.completed_tasks}/${job.tasks}`))), "No jobs yet.", 5);
  const parts = Object.entries(counts).flatMap(([provider, kinds]) =>
    Object.entries(kinds).map(([kind, n]) => `${provider}: ${n} ${kind}`));
  $("#resource-counts").textContent = parts.length ? `Stored: ${parts.join(", ")}` : "";
}

async function loadWebhooks() {
  const { deliveries } = await api("GET", "webhooks");
  fill($("#webhook-table tbody"), deliveries.slice().reverse().map((d) => h("tr", { "data-id": d.id },
    h("td", {}, d.provider), h("td", {}, d.event, h("br"), h("small", { class: "muted" }, d.url)),
    h("td", {}, h("span", { class: `state state-${d.status}` }, d.status)),
    h("td", { class: "attempts" }, h("span", { class: "attempt-count" }, d.attempts.length),
      h("ul", {}, d.attempts.map((a) => h("li", {}, `#${a.number} ${a.status ?? a.error ?? "…"} at ${isoTime(a.time).slice(11, 19)}`)))),
    h("td", {}, h("button", { type: "button", class: "small resend", disabled: d.status === "pending",
      "aria-label": `Resend webhook ${d.id}`,
      onclick: () => act(`Webhook ${d.id} resent`, () => api("POST", `webhooks/${d.id}/resend`)) }, "Resend")))),
  "No webhook deliveries yet.", 5);
}

// -- wallets and keys ------------------------------------------------------------------------------------

function commit(input) {
  input.defaultValue = input.value; // sent: the table may redraw again
  return true;
}

async function loadAccounts() {
  const [{ accounts }, { keys }] = await Promise.all([api("GET", "accounts"), api("GET", "keys")]);
  fill($("#account-table tbody"), accounts.map((a) => {
    const input = h("input", { type: "number", min: 0, step: 1, value: a.wallet_cents ?? "",
      "aria-label": `New balance in cents for ${a.provider} ${a.id}`, class: "cents" });
    const set = () => act(`Balance of ${a.id} set`, () => commit(input) &&
      api("PUT", `accounts/${a.provider}/${encodeURIComponent(a.id)}/wallet`, { wallet_cents: Number(input.value) }));
    return h("tr", { "data-provider": a.provider, "data-account": a.id },
      h("td", {}, a.provider), h("td", {}, h("code", {}, a.id)), h("td", { class: "balance" }, money(a.wallet_cents)),
      h("td", {}, h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); set(); } }, input,
        h("button", { type: "submit", class: "small" }, "Set"))));
  }), "No accounts.", 4);
  fill($("#key-table tbody"), keys.map((k) => {
    const input = h("input", { type: "number", min: 0, step: 1, value: k.spend_limit_cents ?? "", placeholder: "none",
      "aria-label": `Spend limit in cents for key ${k.name} (${k.provider}); empty for none`, class: "cents" });
    const set = () => act(`Spend limit of ${k.name} set`, () => commit(input) &&
      api("PUT", `keys/${k.provider}/${k.key_id}/spend-limit`,
        { spend_limit_cents: input.value === "" ? null : Number(input.value) }));
    return h("tr", { "data-key": k.key_id, class: k.revoked ? "revoked" : "" },
      h("td", {}, k.provider), h("td", {}, k.name), h("td", {}, h("code", {}, k.redacted)),
      h("td", { class: "num" }, k.spent_cents),
      h("td", {}, h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); set(); } }, input,
        h("button", { type: "submit", class: "small" }, "Set"))),
      h("td", {}, k.revoked ? h("span", { class: "state state-failed" }, "revoked")
        : h("button", { type: "button", class: "small danger", "aria-label": `Revoke key ${k.name} (${k.provider})`,
          onclick: () => act(`Key ${k.name} revoked`, () => api("DELETE", `keys/${k.provider}/${k.key_id}`)) }, "Revoke")));
  }), "No keys.", 6);
}

async function createKey(form) {
  const data = new FormData(form);
  const body = { provider: data.get("provider"), name: data.get("name") };
  if (data.get("account")) body.account = data.get("account");
  if (data.get("spend_limit_cents") !== "") body.spend_limit_cents = Number(data.get("spend_limit_cents"));
  await act("Key created", async () => {
    const created = await api("POST", "keys", body);
    const out = $("#new-key");
    out.replaceChildren("New key (shown once): ", h("code", { class: "new-key" }, created.key), " ",
      h("button", { type: "button", class: "small", onclick: () => copy(created.key, "New key") }, "Copy"));
    out.hidden = false;
  });
}

// -- faults ----------------------------------------------------------------------------------------------

async function loadFaults() {
  const { faults } = await api("GET", "faults");
  fill($("#fault-table tbody"), faults.map((f) => h("tr", {},
    h("td", {}, f.id), h("td", {}, f.provider ?? "any"), h("td", {}, f.operation_id ?? "any"),
    h("td", {}, f.status ?? "—"), h("td", {}, f.remaining ?? "∞"), h("td", {}, f.latency_ms ? `${f.latency_ms} ms` : "—"),
    h("td", {}, f.cut_after_events ?? "—"))), "No faults: every call behaves.", 7);
}

async function injectFault(form) {
  const data = new FormData(form);
  const body = {};
  for (const name of ["provider", "operation_id"]) if (data.get(name)) body[name] = data.get(name);
  for (const name of ["status", "count", "latency_ms", "cut_after_events"]) {
    if (data.get(name) !== "") body[name] = Number(data.get(name));
  }
  await act("Fault injected", () => api("POST", "faults", body));
}

// -- clock -----------------------------------------------------------------------------------------------

async function loadClock() {
  state.clock = await api("GET", "clock");
  state.clock.readAt = Date.now() / 1000;
  $("#clock-offset").textContent = state.clock.offset.toFixed(1);
  tick();
}

function tick() {
  if (state.clock.now === undefined) return;
  const now = state.clock.now + (Date.now() / 1000 - state.clock.readAt);
  const text = new Date(now * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  $("#clock-time").textContent = text;
  $("#clock-now").textContent = text;
  $("#clock-now").setAttribute("datetime", text);
}

const advance = (seconds) => act(`Clock advanced ${seconds} s`, () => api("POST", "clock/advance", { seconds }));

// -- wiring ----------------------------------------------------------------------------------------------

async function refreshAll() {
  const results = await Promise.allSettled([loadClock(), loadResources(), loadWebhooks(), loadAccounts(), loadFaults()]);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) notify(failed.reason.message, "error");
}

function scheduleRefresh() {
  // Requests change wallets, jobs and webhooks: refresh once per burst, not once per request.
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refreshAll, 300);
}

function onSubmit(selector, handler) {
  $(selector).addEventListener("submit", (event) => {
    event.preventDefault();
    handler(event.currentTarget);
  });
}

async function start() {
  onSubmit("#fault-form", injectFault);
  onSubmit("#key-form", createKey);
  onSubmit("#advance-form", (form) => advance(Number(new FormData(form).get("seconds"))));
  onSubmit("#request-filters", () => renderRequests());
  // One event per kind of control: a "change" of the text field on blur would re-render the rows under the
  // focus of a keyboard user tabbing into them.
  $("#filter-provider").addEventListener("change", renderRequests);
  $("#filter-status").addEventListener("change", renderRequests);
  $("#filter-operation").addEventListener("input", renderRequests);
  for (const button of document.querySelectorAll("[data-advance]")) {
    button.addEventListener("click", () => advance(Number(button.dataset.advance)));
  }
  $("#clear-faults").addEventListener("click", () => act("Faults cleared", () => api("DELETE", "faults")));
  $("#reset").addEventListener("click", () => act("Reset to the seed state", async () => {
    await api("POST", "reset");
    state.entries = [];
    renderRequests();
  }));
  setInterval(tick, 1000);
  try {
    await loadProviders();
  } catch (error) {
    notify(error.message, "error");
  }
  await refreshAll();
  document.body.dataset.ready = "true";
  listen();
}

start();
