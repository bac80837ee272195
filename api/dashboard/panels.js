// The panels beside the orders: positions and trades, the system's status, and the fill
// detection latency of the last hour.

import { accountPath, get } from "./api.js";
import { drawLatency } from "./chart.js";
import { emptyRow, pnl, sideText, state, statusPill } from "./common.js";
import { $, ago, duration, fill, h, money, num, shortId, sign, time, timeCell } from "./dom.js";

const WINDOW_S = 3600;

// --- positions and trades -------------------------------------------------------------------

export async function loadActivity() {
  const account = state.account;
  try {
    const [positions, trades] = await Promise.all([
      get(`${accountPath(account)}/positions`),
      get(`${accountPath(account)}/trades`, { limit: 50 }),
    ]);
    if (account !== state.account) return;
    renderPositions(positions);
    renderTrades(trades);
  } catch (error) {
    if (error.status === 401 || account !== state.account) return;
    fill($("#positions-table tbody"), emptyRow(4, `Not read: ${error.detail}`, true));
    fill($("#trades-table tbody"), emptyRow(12, `Not read: ${error.detail}`, true));
  }
}

function renderPositions(positions) {
  const body = $("#positions-table tbody");
  if (!positions.length) return fill(body, emptyRow(4, "No positions."));
  fill(body, ...positions.map((p) => h("tr", {
    dataset: { symbol: p.symbol },
    title: `fees ${money(p.fees)} · updated ${time(p.updated_at)}`,
  },
  h("td", { class: "symbol" }, p.symbol),
  h("td", { class: `num ${sign(p.quantity)}` }, num(p.quantity)),
  h("td", { class: "num" }, money(p.average_cost)),
  pnl(p.realized_pnl))));
}

function renderTrades(trades) {
  const body = $("#trades-table tbody");
  if (!trades.length) return fill(body, emptyRow(12, "No trades."));
  fill(body, ...trades.map((t) => h("tr", { dataset: { tradeId: t.trade_id, status: t.status } },
    h("td", {}, shortId(t.trade_id)),
    h("td", { class: "symbol" }, t.symbol),
    h("td", {}, sideText(t.side)),
    h("td", {}, statusPill(t.status)),
    h("td", { class: "num" }, num(t.entry_quantity)),
    h("td", { class: "num" }, num(t.open_quantity)),
    h("td", { class: "num" }, money(t.entry_average_price)),
    h("td", { class: "num" }, money(t.exit_average_price)),
    h("td", { class: "num" }, money(t.fees)),
    pnl(t.realized_pnl),
    h("td", { class: "lifecycle" }, t.lifecycle),
    timeCell(t.opened_at))));
}

// --- the system's status --------------------------------------------------------------------

export async function loadStatus() {
  const account = state.account;
  try {
    const status = await get("/api/v1/status");
    if (account !== state.account) return;
    renderStatus(status);
    fill($("#status-updated"), `updated ${time(new Date().toISOString())}`);
  } catch (error) {
    if (error.status === 401 || account !== state.account) return;
    fill($("#status-body"), h("p", { class: "message error" }, `Status not read: ${error.detail}`));
  }
}

function tile(label, value, { id, tone = "", hint } = {}) {
  return h("div", { class: `tile ${tone}`, id, title: hint },
    h("span", { class: "tile-value" }, value), h("span", { class: "tile-label" }, label));
}

function renderStatus(status) {
  const workers = status.workers?.online ?? [];
  const staleCounts = status.stale?.counts ?? {};
  const staleTotal = Object.values(staleCounts).reduce((sum, n) => sum + Number(n || 0), 0);
  const latency = status.detection_latency;
  const outbox = status.outbox;
  const tiles = h("div", { class: "tiles" },
    tile("workers online", String(workers.length), { id: "status-workers", tone: workers.length ? "good" : "bad",
      hint: workers.join(", ") || "no worker answered" }),
    tile("stale orders", status.stale ? String(staleTotal) : "–",
      { id: "status-stale", tone: staleTotal ? "warn" : "" }),
    tile("outbox waiting", outbox ? String(outbox.waiting) : "–", { tone: outbox?.waiting > 100 ? "warn" : "",
      hint: outbox?.oldest_age_s ? `oldest ${duration(outbox.oldest_age_s)}` : undefined }),
    tile("detection p50 · p99",
      latency?.p50_s != null ? `${duration(latency.p50_s)} · ${duration(latency.p99_s)}` : "–",
      { hint: latency ? `${latency.count} fills in the last ${duration(latency.window_s)}` : undefined }),
  );

  const parts = [tiles];
  const budget = (status.budgets ?? []).find((b) => b.account === state.account);
  if (budget) {
    const share = budget.capacity ? Math.max(0, Math.min(1, budget.tokens / budget.capacity)) : 0;
    parts.push(h("div", { class: "status-block", id: "status-budget" },
      h("div", { class: "block-head" }, h("h3", {}, `Request budget · ${budget.account}`),
        h("span", { class: "muted small" }, `${Math.floor(budget.tokens)} / ${budget.capacity} tokens`)),
      meter(share),
      h("p", { class: "muted small" }, `granted ${budget.granted} · waited ${budget.waited} · `
        + `exhausted ${budget.exhausted} · 429s ${budget.throttled_429}`)));
  }

  const queues = Object.entries(status.queues ?? {});
  parts.push(h("div", { class: "status-block", id: "status-queues" }, h("h3", {}, "Queues"),
    queues.length ? h("div", { class: "chips" }, queues.map(([name, depth]) =>
      h("span", { class: `chip ${depth > 0 ? "busy" : ""}` }, name, h("b", {}, depth ?? "?"))))
      : h("p", { class: "muted small" }, "Not read.")));

  const staleEntries = Object.entries(staleCounts).filter(([, n]) => n);
  parts.push(h("div", { class: "status-block" }, h("h3", {}, "Stale orders"),
    staleEntries.length ? h("div", { class: "chips" }, staleEntries.map(([kind, n]) =>
      h("span", { class: "chip warn" }, kind.replaceAll("_", " "), h("b", {}, n))))
      : h("p", { class: "muted small" },
        status.stale ? `None (checked ${ago(status.stale.at)}).` : "Not reported yet.")));

  const sweeps = Object.entries(status.sweeps ?? {}).sort(([a], [b]) => a.localeCompare(b));
  parts.push(h("div", { class: "status-block" }, h("h3", {}, "Sweeps"),
    sweeps.length ? h("table", { class: "data compact", id: "status-sweeps" },
      h("thead", {}, h("tr", {}, h("th", {}, "Sweep"), h("th", {}, "Last run"), h("th", { class: "num" }, "Took"),
        h("th", {}, "Result"))),
      h("tbody", {}, sweeps.map(([name, run]) => h("tr", { dataset: { sweep: name } },
        h("td", {}, name.replaceAll("_", " ")),
        h("td", { title: run.last_finished ?? "" }, ago(run.last_finished)),
        h("td", { class: "num" }, duration(run.last_duration_s)),
        h("td", { title: run.last_error ?? (run.deadman ? `dead-man: ${run.deadman.state}` : "") },
          sweepResult(run)))))) : h("p", { class: "muted small" }, "No sweep has run yet.")));

  const errors = Object.entries(status.errors ?? {});
  if (errors.length) {
    parts.push(h("div", { class: "status-block" }, errors.map(([section, text]) =>
      h("p", { class: "message error small" }, `${section}: ${text}`))));
  }
  fill($("#status-body"), ...parts);
}

function meter(share) {
  const bar = h("span", { class: share < 0.2 ? "low" : undefined });
  bar.style.width = `${(share * 100).toFixed(1)}%`; // not a style attribute: a CSP may forbid them
  return h("div", { class: "meter" }, bar);
}

function sweepResult(run) {
  if (run.deadman?.state === "dead") return h("span", { class: "pill st-rejected" }, "dead");
  if (run.last_run_ok === true) return h("span", { class: "pill st-filled" }, "ok");
  if (run.last_run_ok === false) return h("span", { class: "pill st-rejected" }, "failed");
  return h("span", { class: "pill st-pending_new" }, run.deadman?.state ?? "–");
}

// --- fill detection latency -------------------------------------------------------------------

export async function loadLatency() {
  const account = state.account;
  try {
    const series = await get(`${accountPath(account)}/fill-latency`, { window_s: WINDOW_S });
    if (account !== state.account) return;
    const points = series.points.map((p) => ({ at: new Date(p.recorded_at), latency: p.latency_s }));
    drawLatency($("#latency-chart"), $("#latency-summary"), points, series);
  } catch (error) {
    if (error.status === 401 || account !== state.account) return;
    fill($("#latency-summary"), `Not read: ${error.detail}`);
  }
}
