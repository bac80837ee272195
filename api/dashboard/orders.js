// The orders table: read by page with the filters, kept current by the event stream.

import { accountPath, get } from "./api.js";
import { emptyRow, intentBadge, isTerminal, ordered, sideText, soon, stamp, state, statusPill } from "./common.js";
import { openDetail, renderDetail } from "./detail.js";
import { $, fill, h, money, num, shortId, timeCell } from "./dom.js";
import { loadActivity, loadLatency } from "./panels.js";

const PAGE = 100;
const REREAD_EACH_MAX = 5; // more orders changed at once: the page is read again instead

// --- orders -------------------------------------------------------------------------------

function filters() {
  return {
    status: $("#filter-status").value,
    symbol: $("#filter-symbol").value.trim().toUpperCase(),
    intent: $("#filter-intent").value,
  };
}

function matches(order, f = filters()) {
  if (f.status === "open" && isTerminal(order.status)) return false;
  if (f.status === "closed" && !isTerminal(order.status)) return false;
  if (f.symbol && order.symbol !== f.symbol) return false;
  if (f.intent && order.intent !== f.intent) return false;
  return true;
}

export async function loadOrders({ more = false } = {}) {
  const account = state.account;
  const epoch = more ? state.loadEpoch : ++state.loadEpoch;
  const started = performance.now();
  const f = filters();
  try {
    const page = await get(`${accountPath(account)}/orders`, {
      status: f.status, symbol: f.symbol, intent: f.intent, limit: PAGE,
      cursor: more ? state.nextCursor : undefined,
    });
    if (account !== state.account || epoch !== state.loadEpoch) return;
    if (!more) {
      // Keep what an event brought while this page was read: it may be newer than the page.
      const kept = [...state.orders.values()].filter((o) => o._seenAt > started && matches(o, f));
      state.orders.clear();
      for (const order of page.items) state.orders.set(order.order_id, order);
      for (const order of kept) upsert(order);
    } else {
      for (const order of page.items) upsert(order);
    }
    state.nextCursor = page.next_cursor;
    state.ordersLoaded = true;
    renderOrders();
  } catch (error) {
    if (account !== state.account || error.status === 401) return;
    fill($("#orders-table tbody"), emptyRow(10, `Orders could not be read: ${error.detail}`, true));
  }
}

/** Put `order` in the table unless what is there is newer; drop it if it no longer matches. */
export function upsert(order) {
  const have = state.orders.get(order.order_id);
  if (have && stamp(have.updated_at) > stamp(order.updated_at)) return false;
  const merged = { ...have, ...order };
  if (!matches(merged)) {
    state.orders.delete(order.order_id);
    return true;
  }
  state.orders.set(order.order_id, merged);
  return true;
}

export function renderOrders() {
  const body = $("#orders-table tbody");
  const rows = [...state.orders.values()].sort((a, b) =>
    stamp(b.created_at) - stamp(a.created_at) || (a.order_id < b.order_id ? 1 : -1));
  fill($("#orders-count"), rows.length ? String(rows.length) : "");
  $("#orders-more").hidden = !state.nextCursor;
  if (!rows.length) {
    if (!state.ordersLoaded) return fill(body, h("tr", { class: "empty" }, h("td", { colspan: 10 }, "Loading…")));
    const f = filters();
    const filtered = f.status !== "all" || f.symbol || f.intent;
    return fill(body, emptyRow(10, filtered ? "No orders match these filters."
      : "No orders yet. New orders appear here as they are placed."));
  }
  fill(body, ...rows.map(orderRow));
}

function orderRow(o) {
  return h("tr", {
    class: o.order_id === state.detailId ? "selected" : undefined,
    tabindex: 0,
    dataset: { orderId: o.order_id, clientOrderId: o.client_order_id, status: o.status },
    onclick: () => openDetail(o.order_id),
    onkeydown: (e) => { if (e.key === "Enter") openDetail(o.order_id); },
  },
  h("td", {}, intentBadge(o.intent)),
  h("td", { class: "symbol" }, o.symbol),
  h("td", {}, sideText(o.side)),
  h("td", { class: "num" }, ordered(o)),
  h("td", { class: "status", dataset: { status: o.status } }, statusPill(o.status)),
  h("td", { class: "num" }, num(o.filled_quantity)),
  h("td", { class: "num" }, money(o.average_fill_price)),
  h("td", {}, shortId(o.broker_order_id)),
  h("td", { class: "lifecycle", title: o.last_error || undefined },
    o.lifecycle ?? h("span", { class: "muted" }, "…")),
  timeCell(o.created_at));
}

// --- live events --------------------------------------------------------------------------

export function applyEvent(event) {
  const kind = event.kind ?? "";
  const data = event.data ?? {};
  if (kind.startsWith("ORDER_") && data.order_id) {
    // The event carries the order's fields, not its lifecycle text: show the fields now,
    // read the order once the burst of events is over.
    const { account_id: _, ...fields } = data;
    if (upsert({ ...fields, account: state.account, _seenAt: performance.now() })) renderOrders();
    state.changed.add(data.order_id);
    soon("changed", 400, rereadChanged);
  }
  if (kind.startsWith("TRADE_") || kind.includes("FILLED")) soon("activity", 1000, loadActivity);
  if (kind === "ORDER_FILLED") soon("latency", 3000, loadLatency);
}

/** The orders events changed, read again for what events do not carry (the lifecycle text):
 * each one, or the whole page when many changed at once. */
function rereadChanged() {
  const ids = [...state.changed];
  state.changed.clear();
  if (ids.length > REREAD_EACH_MAX) {
    loadOrders();
    if (ids.includes(state.detailId)) refreshOrder(state.detailId);
    return;
  }
  for (const id of ids) refreshOrder(id);
}

export async function refreshOrder(orderId) {
  const account = state.account;
  try {
    const detail = await get(`${accountPath(account)}/orders/${orderId}`);
    if (account !== state.account) return;
    upsert({ ...detail.order, _seenAt: performance.now() });
    renderOrders();
    if (state.detailId === orderId) renderDetail(detail);
  } catch (error) {
    if (error.status !== 401) console.warn("ordersync: order not re-read", orderId, error.detail);
  }
}
