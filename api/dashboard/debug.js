// The admin's debug view: the broker's recent orders beside ours, mismatches in red; each of
// ours opens its detail, a trade id shows the trade.

import { get } from "./api.js";
import { emptyRow, showBanner, sideText, state, statusPill } from "./common.js";
import { openDetail } from "./detail.js";
import { $, fill, h, money, num, shortId, time } from "./dom.js";

// --- admin: the broker's orders beside ours --------------------------------------------------

export async function loadDebug() {
  const account = state.account;
  const body = $("#debug-table tbody");
  const hours = Number($("#debug-hours").value) || 24;
  fill(body, emptyRow(13, "Asking the broker…"));
  fill($("#debug-note"), "");
  try {
    const view = await get(`/api/v1/admin/accounts/${encodeURIComponent(account)}/broker-orders`, { hours });
    if (account !== state.account) return;
    const notes = [`${view.rows.length} orders since ${time(view.since)}`];
    const bad = view.rows.filter((r) => r.mismatches.length).length;
    notes.push(bad ? `${bad} with mismatches` : "no mismatches");
    if (view.truncated) notes.push("the broker's listing was cut short: older orders are not compared");
    fill($("#debug-note"), notes.join(" · "));
    if (view.broker_error) {
      fill($("#debug-note"), h("span", { class: "message error" },
        `The broker could not list its orders: ${view.broker_error}`));
    }
    if (!view.rows.length) return fill(body, emptyRow(13, "No orders on either side in this window."));
    fill(body, ...view.rows.map(debugRow));
  } catch (error) {
    if (error.status !== 401) fill(body, emptyRow(13, `Not read: ${error.detail}`, true));
  }
}

function link(text, action, title) {
  return h("a", { href: "#", class: "mono", title, onclick: (e) => { e.preventDefault(); action(); } }, text);
}

function debugRow(row) {
  const b = row.broker;
  const o = row.ours;
  const none = (columns, label, first) => Array.from({ length: columns }, (_, i) =>
    h("td", { class: i === 0 ? `absent ${first}` : "absent" }, i === 0 ? label : ""));
  const brokerCells = b ? [
    h("td", {}, shortId(b.broker_order_id)),
    h("td", {}, b.symbol), h("td", {}, sideText(b.side)),
    h("td", { dataset: { status: b.status }, title: b.raw_status }, statusPill(b.status)),
    h("td", { class: "num" }, num(b.filled_quantity)),
    h("td", { class: "num" }, money(b.average_fill_price)),
  ] : none(6, "not listed by the broker", "");
  const oursCells = o ? [
    h("td", { class: "ours-start" }, link(`${o.order_id.slice(0, 8)}…`, () => openDetail(o.order_id), o.order_id)),
    h("td", { dataset: { status: o.status } }, statusPill(o.status)),
    h("td", { class: "num" }, num(o.filled_quantity)),
    h("td", { class: "num" }, money(o.average_fill_price)),
    h("td", {}, o.decision_id ? link(o.decision_id, () => openDetail(o.order_id),
      "The order placed for this decision") : h("span", { class: "muted" }, "–")),
    h("td", {}, o.trade_id ? link(o.trade_id, () => showTrade(o.trade_id), "Show the trade")
      : h("span", { class: "muted" }, "–")),
  ] : none(6, "not in ordersync", "ours-start");
  return h("tr", {
    class: row.mismatches.length ? "mismatch" : undefined,
    dataset: { mismatch: String(row.mismatches.length > 0), brokerOrderId: b?.broker_order_id ?? "",
      orderId: o?.order_id ?? "" },
  }, ...brokerCells, ...oursCells,
  h("td", { class: "mismatches" }, row.mismatches.length ? h("ul", {}, row.mismatches.map((m) => h("li", {}, m)))
    : h("span", { class: "ok" }, "✓ same")));
}

function showTrade(tradeId) {
  showTab("orders");
  const row = document.querySelector(`#trades-table tr[data-trade-id="${CSS.escape(tradeId)}"]`);
  if (!row) return showBanner(`Trade ${tradeId} is not among the 50 latest trades.`, "info");
  row.scrollIntoView({ block: "center" });
  row.classList.remove("flash");
  void row.offsetWidth; // restart the animation
  row.classList.add("flash");
}

export function showTab(name) {
  for (const tab of document.querySelectorAll("#tabs .tab")) {
    tab.classList.toggle("active", tab.dataset.tab === name);
  }
  $("#view-orders").hidden = name !== "orders";
  $("#view-debug").hidden = name !== "debug";
  if (name === "debug") loadDebug();
}
