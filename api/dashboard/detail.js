// The order's detail panel: its fields, history, fills, trade and outcome, the last broker
// report, and the Sync now and Cancel buttons.

import { accountPath, get, post } from "./api.js";
import { debounce, emptyRow, intentBadge, isTerminal, ordered, pnl, sideText, stamp, state, statusPill } from "./common.js";
import { $, duration, fill, h, money, num, shortId, time, timeCell } from "./dom.js";
import { refreshOrder, renderOrders, upsert } from "./orders.js";

// --- the order's detail -------------------------------------------------------------------

export async function openDetail(orderId) {
  state.detailId = orderId;
  state.detailJson = null;
  const drawer = $("#detail");
  drawer.hidden = false;
  drawer.dataset.orderId = orderId;
  delete drawer.dataset.loaded;
  fill($("#detail-message"), "");
  fill($("#detail-body"), h("p", { class: "muted" }, "Loading…"));
  renderOrders();
  try {
    const detail = await get(`${accountPath(state.account)}/orders/${orderId}`);
    if (state.detailId === orderId) renderDetail(detail);
  } catch (error) {
    if (state.detailId === orderId) fill($("#detail-body"), h("p", { class: "message error" }, error.detail));
  }
}

export function closeDetail() {
  state.detailId = null;
  $("#detail").hidden = true;
  renderOrders();
}

function field(label, value, { mono = false, wide = false } = {}) {
  const shown = value === null || value === undefined || value === "" ? "–" : value;
  const kind = [mono && "mono", wide && "wide"].filter(Boolean).join(" ") || undefined;
  return [h("dt", {}, label), h("dd", { class: kind }, shown)];
}

function section(title, id, ...content) {
  return h("section", { class: "detail-section", id }, h("h3", {}, title), ...content);
}

export function renderDetail(detail) {
  // Re-read after every event: draw again only what changed, keeping what the reader opened.
  const json = JSON.stringify(detail);
  if (json === state.detailJson) return;
  state.detailJson = json;
  const reportOpen = Boolean($("#detail-report")?.open);
  const o = detail.order;
  const drawer = $("#detail");
  drawer.dataset.loaded = "true";
  drawer.dataset.status = o.status;
  fill($("#detail-title"), intentBadge(o.intent), " ", sideText(o.side), ` ${ordered(o)} ${o.symbol} `,
    h("span", { class: "muted" }, o.order_type), " ",
    h("span", { id: "detail-status", dataset: { status: o.status } }, statusPill(o.status)));
  fill($("#detail-lifecycle"), o.lifecycle);
  $("#detail-cancel").hidden = isTerminal(o.status);

  const fields = h("dl", { class: "fields" },
    field("Order id", o.order_id, { mono: true, wide: true }),
    field("Client order id", o.client_order_id, { mono: true, wide: true }),
    field("Broker order id", o.broker_order_id, { mono: true, wide: true }),
    field("Account", o.account),
    field("Origin", o.origin),
    field("Type · TIF", `${o.order_type} · ${o.time_in_force}`),
    field(o.quantity === null ? "Notional" : "Quantity", ordered(o)),
    field("Limit price", o.limit_price && money(o.limit_price)),
    field("Stop price", o.stop_price && money(o.stop_price)),
    field("Requested price", o.requested_price && money(o.requested_price)),
    field("Status (broker's)", `${o.status}${o.raw_status ? ` (${o.raw_status})` : ""}`),
    field("Filled (broker's)", `${num(o.filled_quantity)} (${num(o.broker_filled_quantity)})`),
    field("Average fill price", o.average_fill_price && money(o.average_fill_price)),
    field("Fees", money(o.fees)),
    field("Decision id", o.decision_id, { mono: true }),
    field("Trade id", o.trade_id, { mono: true }),
    field("Anomalies", String(o.anomaly_count)),
    field("Last error", o.last_error, { wide: Boolean(o.last_error) }),
    field("Created", time(o.created_at)),
    field("Submitted", time(o.submitted_at)),
    field("Accepted", time(o.accepted_at)),
    field("Filled", time(o.filled_at)),
    field("Closed", time(o.closed_at)),
    field("Last checked", time(o.last_checked_at)),
    field("Lost", o.lost_at && time(o.lost_at)),
  );

  const history = h("table", { class: "data compact", id: "detail-history" },
    h("thead", {}, h("tr", {}, h("th", {}, "At"), h("th", {}, "Event"), h("th", {}, "Status"),
      h("th", { class: "num" }, "Filled"), h("th", {}, "Detail"))),
    h("tbody", {}, detail.history.length ? detail.history.map((e) => h("tr", { dataset: { kind: e.kind } },
      timeCell(e.at),
      h("td", { title: e.raw_status ? `broker status ${e.raw_status}` : undefined },
        e.kind, h("div", { class: "muted small" }, e.source)),
      h("td", {}, historyChange(e)),
      h("td", { class: "num" }, num(e.filled_quantity)),
      h("td", { class: "wrap" }, e.detail ?? ""))) : emptyRow(5, "No history.")));

  const fills = h("table", { class: "data compact", id: "detail-fills" },
    h("thead", {}, h("tr", {}, h("th", {}, "Fill"), h("th", { class: "num" }, "Qty"),
      h("th", { class: "num" }, "Price"), h("th", { class: "num" }, "Fee"), h("th", {}, "Executed"),
      h("th", {}, "Recorded"), h("th", { class: "num" }, "Latency"))),
    h("tbody", {}, detail.fills.length ? detail.fills.map((f) => h("tr", {},
      h("td", {}, shortId(f.broker_fill_id)),
      h("td", { class: "num" }, num(f.quantity)),
      h("td", { class: "num" }, money(f.price)),
      h("td", { class: "num" }, money(f.fee)),
      timeCell(f.filled_at), timeCell(f.recorded_at),
      h("td", { class: "num" }, duration((stamp(f.recorded_at) - stamp(f.filled_at)) / 1000))))
      : emptyRow(7, "No fills.")));

  const parts = [
    section("Order", "detail-fields", fields),
    section(`History (${detail.history.length})`, "detail-history-section",
      h("div", { class: "table-wrap" }, history)),
    section(`Fills (${detail.fills.length})`, "detail-fills-section", h("div", { class: "table-wrap" }, fills)),
  ];
  if (detail.trade) parts.push(tradeSection(detail.trade, detail.outcome));
  // One row per linked order: "legs" is a list (an exit leg each), the others one id or null.
  const links = Object.entries(detail.links ?? {})
    .flatMap(([name, v]) => (Array.isArray(v) ? v.map((id) => ["leg", id]) : [[name, v]]))
    .filter(([, v]) => v);
  if (links.length) {
    parts.push(section("Linked orders", "detail-links", h("dl", { class: "fields" },
      links.map(([name, id]) => field(name.replace("_", " "),
        h("a", { href: "#", onclick: (e) => { e.preventDefault(); openDetail(id); } }, id))))));
  }
  parts.push(h("details", { class: "report", id: "detail-report", open: reportOpen },
    h("summary", {}, "Last broker report"),
    h("pre", {}, detail.last_broker_report
      ? JSON.stringify(detail.last_broker_report, null, 2) : "None recorded.")));
  fill($("#detail-body"), ...parts);
}

function historyChange(entry) {
  if (!entry.to_status) return h("span", { class: "muted" }, "–");
  if (!entry.from_status || entry.from_status === entry.to_status) return statusPill(entry.to_status);
  return [statusPill(entry.from_status), h("span", { class: "arrow" }, "→"), statusPill(entry.to_status)];
}

function tradeSection(trade, outcome) {
  const fields = h("dl", { class: "fields" },
    field("Trade id", trade.trade_id, { mono: true }),
    field("Status", statusPill(trade.status)),
    field("Lifecycle", trade.lifecycle, { wide: true }),
    field("Side", trade.side),
    field("Entry", `${num(trade.entry_quantity)} @ ${money(trade.entry_average_price)}`),
    field("Exit", `${num(trade.exit_quantity)} @ ${money(trade.exit_average_price)}`),
    field("Open quantity", num(trade.open_quantity)),
    field("Fees", money(trade.fees)),
    [h("dt", {}, "Realized PnL"), pnl(trade.realized_pnl, "dd")],
  );
  const parts = [fields];
  if (outcome) {
    parts.push(h("h4", {}, "Outcome"), h("dl", { class: "fields" },
      field("Quantity", num(outcome.quantity)),
      field("Entry · exit", `${money(outcome.entry_average_price)} · ${money(outcome.exit_average_price)}`),
      [h("dt", {}, "Realized PnL"), pnl(outcome.realized_pnl, "dd")],
      field("Fees", money(outcome.fees)),
      field("Slippage (entry · exit)", `${money(outcome.entry_slippage)} · ${money(outcome.exit_slippage)}`),
      field("Slippage cost", money(outcome.slippage_cost)),
      field("Held", duration(Number(outcome.holding_s))),
      field("Closed", time(outcome.closed_at)),
    ));
  }
  return section("Trade", "detail-trade", ...parts);
}

function detailMessage(text, kind) {
  const note = $("#detail-message");
  note.className = `message ${kind}`;
  fill(note, text);
}

async function detailAction(button, action) {
  const orderId = state.detailId;
  if (!orderId) return;
  button.disabled = true;
  detailMessage("Asking…", "info");
  try {
    const text = await action(`${accountPath(state.account)}/orders/${orderId}`);
    if (state.detailId === orderId) detailMessage(text, "ok");
  } catch (error) {
    if (state.detailId === orderId) detailMessage(`${error.detail} (HTTP ${error.status})`, "error");
  } finally {
    button.disabled = false;
    refreshOrder(orderId);
  }
}

export async function syncNow() {
  await detailAction($("#detail-sync"), async (path) => {
    const result = await post(`${path}/sync`);
    upsert({ ...result.order, _seenAt: performance.now() });
    renderOrders();
    const change = result.old_status === result.new_status
      ? `still ${result.new_status}` : `${result.old_status} → ${result.new_status}`;
    return `Synced with the broker: ${change} (${result.outcome}).`;
  });
}

export async function cancelOrder() {
  const orderId = state.detailId;
  await detailAction($("#detail-cancel"), async (path) => {
    const answer = await post(`${path}/cancel`);
    return `Cancel requested (was ${answer.status}): ${answer.detail}.`;
  });
  // PENDING_CANCEL is written by the worker without an event: read the order once more.
  debounce(`order:${orderId}`, 1500, () => refreshOrder(orderId));
}
