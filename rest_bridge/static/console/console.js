// asyncgate console: plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Every request carries the virtual key in `x-bf-vk`; the key lives in sessionStorage (this
// tab only). Live updates read each running job's Server-Sent Events
// (GET /v1/async/jobs/{id}/events) with fetch() and a stream reader: EventSource cannot send
// headers, and a key in a URL would be written to access logs and browser history. A stream
// that breaks is resumed with Last-Event-ID; where streaming is unavailable the console
// falls back to polling GET /v1/async/jobs/{id} with `Prefer: wait=N` (the server's wait,
// not a timer). Data from the API is only ever inserted as text, never as HTML.
"use strict";

const KEY_STORAGE = "asyncgate.virtual-key";
const JOBS = "/v1/async/jobs";
const EDITS = "/v1/async/images/edits";
const PAGE_SIZE = 20;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
// A browser opens at most 6 HTTP/1.1 connections to one origin; following a job holds one
// for as long as it runs, so at most this many are followed at once, leaving room for the rest.
const MAX_WATCHERS = 3;
const POLL_WAIT_SECONDS = 20;
const RECONNECT_MS = 1000;

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  pageTokens: [""], // the token of each page visited; the last is the current page's
  nextToken: "",
  jobs: new Map(), // id -> the latest envelope seen (list entry or event)
  selected: "",
  watchers: new Map(), // id -> AbortController of its event stream or poll loop
  waiting: [], // ids of running jobs to follow once a watcher is free
};

const $ = (selector) => document.querySelector(selector);

function say(text, isError = false) {
  const message = $("#message");
  message.textContent = text;
  message.classList.toggle("error", isError);
}

class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error ? body.error : {};
    super(`${status}: ${error.message || "request failed"}${error.param ? ` (${error.param})` : ""}`);
    this.status = status;
    this.code = error.code || "";
  }

  // The key itself was refused (unknown, or missing): not a refusal of one request.
  get keyRefused() {
    return this.status === 401 || this.code === "virtual_key_not_found";
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("x-bf-vk", state.key);
  // no-store: job states change, and Chromium holds a second read of a URL (a job's detail)
  // behind a first one still in flight (a held poll of the same job) to share its cache entry.
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, body);
    if (error.keyRefused) signOut(error);
    throw error;
  }
  return body;
}

// ---- signing in and out ----------------------------------------------------------------

function showSignedIn() {
  const signedIn = Boolean(state.key);
  $("#sign-in-panel").hidden = signedIn;
  $("#console").hidden = !signedIn;
  $("#who").hidden = !signedIn;
  $("#who-key").textContent = signedIn ? `key …${state.key.slice(-4)}` : "";
}

function signIn(event) {
  event.preventDefault();
  state.key = $("#key").value.trim();
  $("#key").value = "";
  sessionStorage.setItem(KEY_STORAGE, state.key);
  showSignedIn();
  loadPage([""]);
}

function signOut(refusal = null) {
  for (const controller of state.watchers.values()) controller.abort();
  state.watchers.clear();
  state.waiting = [];
  state.jobs.clear();
  state.key = "";
  state.selected = "";
  sessionStorage.removeItem(KEY_STORAGE);
  $("#detail").hidden = true;
  showSignedIn();
  say(refusal ? `The key was refused (${refusal.message}): sign in again.` : "", Boolean(refusal));
}

// ---- the job list ------------------------------------------------------------------------

async function loadPage(tokens) {
  const query = new URLSearchParams({ page_size: String(PAGE_SIZE) });
  const token = tokens[tokens.length - 1];
  if (token) query.set("page_token", token);
  try {
    const page = await api(`${JOBS}?${query}`);
    state.pageTokens = tokens;
    state.nextToken = page.next_page_token || "";
    renderList(page.data);
  } catch (error) {
    if (!error.keyRefused) say(`Could not list jobs: ${error.message}`, true);
  }
}

function renderList(jobs) {
  const body = $("#jobs tbody");
  body.replaceChildren();
  const shown = new Set();
  for (const job of jobs) {
    state.jobs.set(job.id, job);
    body.append(row(job));
    shown.add(job.id);
  }
  $("#jobs-empty").hidden = jobs.length > 0;
  $("#newer").disabled = state.pageTokens.length <= 1;
  $("#older").disabled = !state.nextToken;
  $("#page-number").textContent = `page ${state.pageTokens.length}`;
  for (const [id, controller] of state.watchers) {
    if (!shown.has(id) && id !== state.selected) {
      controller.abort();
      state.watchers.delete(id);
    }
  }
  state.waiting = state.waiting.filter((id) => shown.has(id));
  for (const job of jobs) if (!TERMINAL.has(job.status)) watch(job.id);
}

function row(job) {
  const tr = document.createElement("tr");
  tr.dataset.id = job.id;
  tr.classList.toggle("selected", job.id === state.selected);
  const cells = [localTime(job.created_at), job.request_type || "", null, job.id];
  for (const value of cells) {
    const td = document.createElement("td");
    if (value === null) td.append(statusBadge(job.status));
    else td.textContent = value;
    tr.append(td);
  }
  tr.lastChild.className = "id";
  tr.addEventListener("click", () => select(job.id));
  return tr;
}

function statusBadge(status) {
  const badge = document.createElement("span");
  badge.className = `status ${status}`;
  badge.textContent = status;
  return badge;
}

function localTime(rfc3339) {
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 || "" : date.toLocaleString();
}

// A job's new state, from an event, a poll or a read: its row and, if open, its detail.
// Each envelope is complete: keys it lacks (a queue position once running) are gone.
function update(job) {
  state.jobs.set(job.id, job);
  const old = document.querySelector(`#jobs tbody tr[data-id="${CSS.escape(job.id)}"]`);
  if (old) old.replaceWith(row(job));
  if (job.id === state.selected) renderDetail(job);
}

// ---- live updates ------------------------------------------------------------------------

// Follows a job until it ends; beyond MAX_WATCHERS jobs wait their turn (the open job's
// detail never waits, so at most MAX_WATCHERS + 1 connections are held).
function watch(id, urgent = false) {
  if (state.watchers.has(id)) return;
  if (state.watchers.size >= MAX_WATCHERS && !urgent) {
    if (!state.waiting.includes(id)) state.waiting.push(id);
    return;
  }
  const controller = new AbortController();
  state.watchers.set(id, controller);
  const run = "body" in Response.prototype && typeof TextDecoderStream === "function" ? stream : poll;
  run(id, controller.signal)
    .catch((error) => {
      if (!controller.signal.aborted) say(`Live updates of ${id} stopped: ${error.message}`, true);
    })
    .finally(() => {
      if (state.watchers.get(id) === controller) state.watchers.delete(id);
      const next = state.waiting.shift();
      if (next && !TERMINAL.has((state.jobs.get(next) || {}).status)) watch(next);
    });
}

// The job's event stream until a terminal event; resumed from the last event id if it breaks.
async function stream(id, signal) {
  let lastEventId = "";
  while (!signal.aborted) {
    const headers = { "x-bf-vk": state.key, Accept: "text/event-stream" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let ended = false;
    try {
      const response = await fetch(`${JOBS}/${encodeURIComponent(id)}/events`, { headers, signal, cache: "no-store" });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      for await (const event of serverSentEvents(response.body)) {
        if (event.id) lastEventId = event.id;
        if (event.event !== "status") continue;
        const job = JSON.parse(event.data);
        update(job);
        if (TERMINAL.has(job.status)) ended = true;
      }
    } catch (error) {
      if (signal.aborted || error instanceof ApiError) throw error;
    }
    if (ended) return;
    await sleep(RECONNECT_MS, signal);
  }
}

// text/event-stream -> {event, id, data} objects (the WHATWG parsing rules this API needs).
async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", id: "", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) yield { event: event.event, id: event.id, data: event.data.join("\n") };
        event = { event: "message", id: "", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") event.data.push(value);
      else if (field === "event") event.event = value;
      else if (field === "id") event.id = value;
    }
  }
}

// Without streaming: the server holds each poll until the job ends or N seconds pass.
async function poll(id, signal) {
  while (!signal.aborted) {
    const job = await api(`${JOBS}/${encodeURIComponent(id)}`, {
      headers: { Prefer: `wait=${POLL_WAIT_SECONDS}` },
      signal,
    });
    update(job);
    if (TERMINAL.has(job.status)) return;
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

// ---- a job's detail ----------------------------------------------------------------------

async function select(id) {
  state.selected = id;
  for (const tr of document.querySelectorAll("#jobs tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.id === id);
  }
  try {
    const job = await api(`${JOBS}/${encodeURIComponent(id)}`);
    update(job);
    if (!TERMINAL.has(job.status)) watch(id, true);
  } catch (error) {
    if (!error.keyRefused) say(`Could not read job ${id}: ${error.message}`, true);
  }
}

function renderDetail(job) {
  $("#detail").hidden = false;
  $("#detail").dataset.id = job.id;
  $("#detail").dataset.status = job.status;
  $("#detail-id").textContent = job.id;
  const result = job.result || {};
  const fields = (result.extra_fields || (job.error && job.error.extra_fields) || {});
  const summary = [
    ["Type", job.request_type],
    ["Status", job.status],
    ["Model", fields.model_requested && `${fields.provider ? `${fields.provider}/` : ""}${fields.model_requested}`],
    ["Created", job.created_at && localTime(job.created_at)],
    ["Completed", job.completed_at && localTime(job.completed_at)],
    ["Queue position", job.queue_position],
    ["Attempt", job.attempt],
    ["Labels", job.labels && Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
    ["Expires", job.expires_at && localTime(job.expires_at)],
  ];
  const list = $("#detail-summary");
  list.replaceChildren();
  for (const [name, value] of summary) {
    if (value === undefined || value === null || value === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    list.append(dt, dd);
  }
  const error = $("#detail-error");
  error.hidden = !job.error;
  error.querySelector("pre").textContent = job.error ? JSON.stringify(job.error, null, 2) : "";
  renderImages(job);
  renderEmbeddings(job);
}

function renderImages(job) {
  const items = job.result && job.result.object !== "list" ? job.result.data || [] : [];
  const box = $("#detail-images .thumbs");
  box.replaceChildren();
  items.forEach((item, index) => {
    const source = item.url ? safeUrl(item.url) : item.b64_json ? `data:image/png;base64,${item.b64_json}` : "";
    if (!source) return;
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = `result ${index + 1}`;
    img.src = source;
    const link = document.createElement("a");
    link.href = source;
    link.download = `${job.id}-${index}.png`;
    link.textContent = "Download";
    const caption = document.createElement("figcaption");
    caption.append(link);
    figure.append(img, caption);
    box.append(figure);
  });
  $("#detail-images").hidden = box.childElementCount === 0;
}

function renderEmbeddings(job) {
  const result = job.result && job.result.object === "list" ? job.result : null;
  $("#detail-embeddings").hidden = !result;
  if (!result) return;
  const first = result.data[0] ? result.data[0].embedding : [];
  const dims = Array.isArray(first) ? `${first.length} dimensions` : "base64-encoded";
  const head = Array.isArray(first) ? `; first: [${first.slice(0, 4).map((x) => x.toFixed(4)).join(", ")}, …]` : "";
  const usage = result.usage ? `; ${result.usage.total_tokens} tokens` : "";
  $("#detail-embeddings p").textContent =
    `${result.data.length} vector(s), ${dims}, model ${result.model}${usage}${head}`;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "";
  } catch {
    return "";
  }
}

// ---- submitting an image edit ------------------------------------------------------------

async function submitEdit(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("model", $("#edit-model").value.trim());
  form.append("type", $("#edit-type").value);
  const prompt = $("#edit-prompt").value.trim();
  if (prompt) form.append("prompt", prompt);
  const [file] = $("#edit-image").files;
  if (!file) return say("Choose an image first.", true);
  form.append("image", file, file.name);
  $("#edit-submit").disabled = true;
  try {
    const accepted = await api(EDITS, { method: "POST", body: form });
    say(`Submitted job ${accepted.id}.`);
    await loadPage([""]);
    await select(accepted.id);
  } catch (error) {
    if (!error.keyRefused) say(`Submit refused: ${error.message}`, true);
  } finally {
    $("#edit-submit").disabled = false;
  }
}

// ---- wiring ------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#edit").addEventListener("submit", submitEdit);
  $("#refresh").addEventListener("click", () => loadPage(state.pageTokens));
  $("#older").addEventListener("click", () => loadPage([...state.pageTokens, state.nextToken]));
  $("#newer").addEventListener("click", () => loadPage(state.pageTokens.slice(0, -1)));
  showSignedIn();
  if (state.key) loadPage([""]);
});
