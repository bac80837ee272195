// The ordersync dashboard: one account's orders (live from the event stream), the order's
// detail with Sync now and Cancel, positions and trades, the system's status, the fill
// detection latency of the last hour, and for the admin the broker's orders beside ours.
// The key is asked for once per browser tab.

import { followEvents, get, key, request, whenUnauthorized } from "./api.js";
import { debounce, every, showBanner, state } from "./common.js";
import { loadDebug, showTab } from "./debug.js";
import { cancelOrder, closeDetail, syncNow } from "./detail.js";
import { $, fill, h } from "./dom.js";
import { applyEvent, loadOrders, renderOrders } from "./orders.js";
import { loadActivity, loadLatency, loadStatus } from "./panels.js";

const STATUS_EVERY_MS = 10_000;
const ACTIVITY_EVERY_MS = 30_000;
const LATENCY_EVERY_MS = 60_000;
const ACCOUNT_SLOT = "ordersync.account";
// What is emptied when the key is forgotten, beside every table's rows.
const READ_WITH_THE_KEY = [
  "#account-select", "#orders-count", "#status-body", "#status-updated", "#latency-chart",
  "#latency-summary", "#debug-note", "#detail-title", "#detail-lifecycle", "#detail-message",
  "#detail-body",
];

// --- signing in and out -------------------------------------------------------------------

function showLogin(message = "", kind = "error") {
  stopSession();
  $("#app").hidden = true;
  $("#detail").hidden = true;
  $("#tabs").hidden = true;
  $("#account-picker").hidden = true;
  $("#forget-key").hidden = true;
  $("#live").hidden = true;
  setLive("off");
  $("#login").hidden = false;
  const note = $("#login-message");
  note.className = `message ${kind}`;
  fill(note, message);
  $("#key-input").value = "";
  $("#key-input").focus();
}

function signOut(message, kind = "error") {
  key.forget();
  state.accounts = [];
  state.admin = false;
  state.account = null;
  state.orders.clear();
  closeDetail();
  // Nothing the key could read stays in the page.
  for (const body of document.querySelectorAll("#app tbody")) body.replaceChildren();
  for (const id of READ_WITH_THE_KEY) $(id).replaceChildren();
  renderLinks(); // without what the API said
  showLogin(message, kind);
}

async function signIn(event) {
  event.preventDefault();
  const presented = $("#key-input").value.trim();
  if (!presented) return;
  const button = $("#key-submit");
  button.disabled = true;
  fill($("#login-message"), "");
  try {
    await request("GET", "/api/v1/accounts", { keyOverride: presented });
    key.set(presented);
    await start();
  } catch (error) {
    const why = error.status === 401 ? `This key was refused: ${error.detail}.` : error.detail;
    fill($("#login-message"), why);
  } finally {
    button.disabled = false;
  }
}

async function start() {
  let accounts;
  try {
    accounts = await get("/api/v1/accounts");
  } catch (error) {
    if (error.status !== 401) showLogin(`The API could not be asked: ${error.detail}`);
    return;
  }
  state.accounts = accounts;
  state.admin = await isAdmin();
  loadLinks();
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#forget-key").hidden = false;
  $("#live").hidden = false;
  $("#tabs").hidden = !state.admin; // one view only for an account key
  $("#tab-debug").hidden = !state.admin;
  document.body.dataset.role = state.admin ? "admin" : "account";
  const select = $("#account-select");
  fill(select, ...accounts.map((a) => h("option", { value: a.name },
    a.is_active ? `${a.name} · ${a.broker}` : `${a.name} · ${a.broker} (disabled)`)));
  $("#account-picker").hidden = accounts.length === 0;
  if (!accounts.length) {
    showBanner("This key reaches no account.", "info");
    return;
  }
  const remembered = sessionStorage.getItem(ACCOUNT_SLOT);
  const chosen = accounts.some((a) => a.name === remembered) ? remembered : accounts[0].name;
  select.value = chosen;
  showTab("orders");
  selectAccount(chosen);
}

async function isAdmin() {
  return (await get("/api/v1/whoami")).admin === true;
}

// --- one account: the stream, the tables, the timers --------------------------------------

function stopSession() {
  state.session?.abort();
  state.session = null;
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.debounced.forEach(clearTimeout);
  state.debounced.clear();
  state.changed.clear();
}

function selectAccount(name) {
  stopSession();
  state.account = name;
  sessionStorage.setItem(ACCOUNT_SLOT, name);
  state.orders.clear();
  state.ordersLoaded = false;
  state.nextCursor = null;
  closeDetail();
  showBanner("");
  renderOrders();
  const session = new AbortController();
  state.session = session;
  let wasLive = false;
  followEvents(name, {
    signal: session.signal,
    onEvent: applyEvent,
    onState: (live, info) => {
      setLive(live, info);
      // After every (re)connect the lists are read again: whatever changed before the
      // stream started is in them, whatever changes after comes as an event.
      if (live === "live" && wasLive !== "live") loadOrders();
      wasLive = live;
    },
  });
  loadOrders();
  loadActivity();
  loadStatus();
  loadLatency();
  every(STATUS_EVERY_MS, loadStatus);
  every(ACTIVITY_EVERY_MS, loadActivity);
  every(LATENCY_EVERY_MS, loadLatency);
  if (!$("#view-debug").hidden) loadDebug();
}

function setLive(live, info = {}) {
  const badge = $("#live");
  badge.dataset.state = live;
  const text = {
    live: "Live",
    connecting: "Connecting…",
    reconnecting: `Reconnecting in ${Math.round((info.waitMs ?? 0) / 1000)} s`,
    offline: "Offline",
    off: "Offline",
  }[live];
  fill(badge, text ?? live);
  badge.title = info.reason ? `The event stream: ${info.reason}` : "The event stream";
}

// --- links to the operations tools ---------------------------------------------------------

const LINK_NAMES = { metrics: "Metrics", flower: "Flower", grafana: "Grafana", docs: "API docs" };

/** The metrics, Flower, Grafana and the API's description where known: from the API's
 * /api/v1/links, else from window.ORDERSYNC_LINKS (which a page may set before this runs). */
function renderLinks(known = {}) {
  const given = window.ORDERSYNC_LINKS;
  const set = Object.fromEntries(Object.entries(known).filter(([, url]) => url));
  const configured = { ...(given && typeof given === "object" ? given : {}), ...set };
  const entries = Object.entries(configured).filter(([, url]) => url);
  const links = [];
  for (const [name, url] of entries) {
    let parsed;
    try {
      parsed = new URL(String(url), location.href);
    } catch {
      continue;
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") continue; // no javascript:
    const attrs = { href: parsed.href, target: "_blank", rel: "noopener noreferrer", id: `link-${name}` };
    links.push(h("a", attrs, LINK_NAMES[name] ?? name));
  }
  fill($("#links"), ...links);
}

async function loadLinks() {
  try {
    const known = await get("/api/v1/links");
    if (known && typeof known === "object") renderLinks(known);
  } catch {
    // an API without /api/v1/links: what the page was given is all there is
  }
}

// --- start ----------------------------------------------------------------------------------

function bind() {
  $("#key-form").addEventListener("submit", signIn);
  $("#forget-key").addEventListener("click", () => signOut("The key is forgotten in this tab.", "info"));
  $("#account-select").addEventListener("change", (e) => selectAccount(e.target.value));
  for (const tab of document.querySelectorAll("#tabs .tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  $("#filter-status").addEventListener("change", () => loadOrders());
  $("#filter-intent").addEventListener("change", () => loadOrders());
  $("#filter-symbol").addEventListener("input", () => debounce("symbol", 350, () => loadOrders()));
  $("#orders-more").addEventListener("click", () => loadOrders({ more: true }));
  $("#detail-close").addEventListener("click", closeDetail);
  $("#detail-sync").addEventListener("click", syncNow);
  $("#detail-cancel").addEventListener("click", cancelOrder);
  $("#debug-form").addEventListener("submit", (e) => { e.preventDefault(); loadDebug(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.detailId) closeDetail(); });
  whenUnauthorized((detail) => signOut(`The key was refused (${detail}): enter a valid key.`));
}

bind();
renderLinks();
if (key.get()) start();
else showLogin();

// For tests and debugging: what the page holds (never the key).
window.ordersync = { state };
