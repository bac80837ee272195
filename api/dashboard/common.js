// What the dashboard's modules share: the page's state, timers that end with the account's
// session, and the small renderers every table uses.

import { $, fill, h, money, num, sign } from "./dom.js";

const TERMINAL = new Set(["FILLED", "CANCELED", "REJECTED", "EXPIRED", "REPLACED"]);

export const state = {
  accounts: [],
  account: null, // the account shown
  admin: false,
  orders: new Map(), // order id -> OrderOut (or the fields an event carried, until re-read)
  nextCursor: null,
  ordersLoaded: false, // the first page of the account's orders arrived
  loadEpoch: 0, // which orders load is the latest (an older answer is dropped)
  detailId: null, // the order in the detail panel
  detailJson: null, // the detail drawn last
  session: null, // AbortController of the current account's stream
  timers: [],
  debounced: new Map(), // name -> timer of debounce() and soon()
  changed: new Set(), // ids of orders events changed, to read again
};

// --- small helpers ----------------------------------------------------------------------------

export function debounce(name, ms, action) {
  clearTimeout(state.debounced.get(name));
  state.debounced.set(name, setTimeout(() => {
    state.debounced.delete(name);
    action();
  }, ms));
}

/** Run `action` once within `ms`, however often this is asked meanwhile (never starved by a
 * steady stream of asks, as a debounce would be). */
export function soon(name, ms, action) {
  if (state.debounced.has(name)) return;
  state.debounced.set(name, setTimeout(() => {
    state.debounced.delete(name);
    action();
  }, ms));
}

export function every(ms, action) {
  state.timers.push(setInterval(action, ms));
}

export const stamp = (iso) => (iso ? Date.parse(iso) : 0);
export const isTerminal = (status) => TERMINAL.has(status);

export function statusPill(status) {
  return h("span", { class: `pill st-${String(status).toLowerCase()}` }, status ?? "–");
}

export function intentBadge(intent) {
  if (!intent) return h("span", { class: "muted" }, "–");
  return h("span", { class: `badge intent-${intent.toLowerCase()}` }, intent);
}

export function sideText(side) {
  return h("span", { class: `side side-${side}` }, side ?? "–");
}

/** What an order is for: its quantity, or a notional order's amount of money ("$500.00"). */
export function ordered(order) {
  return order.quantity === null && order.notional ? `$${money(order.notional)}` : num(order.quantity);
}

export function pnl(value, tag = "td") {
  return h(tag, { class: `num pnl ${sign(value)}` }, value === null || value === undefined ? "–" : money(value));
}

export function emptyRow(columns, text, error = false) {
  return h("tr", { class: error ? "empty error" : "empty", dataset: { empty: "true" } },
    h("td", { colspan: columns }, text));
}

export function showBanner(text, kind = "error") {
  const banner = $("#banner");
  banner.className = `banner ${kind}`;
  banner.hidden = !text;
  fill(banner, text || "");
}
