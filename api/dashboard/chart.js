// The fill-detection-latency chart: one dot per fill of the last hour, at the time ordersync
// recorded it (x) and how long after the broker's execution that was (y, seconds).

import { duration, fill, svg, time } from "./dom.js";

const WIDTH = 340;
const HEIGHT = 150;
const PAD = { left: 40, right: 10, top: 10, bottom: 22 };
const WINDOW_MS = 3600 * 1000;

/** Nearest-rank percentile of sorted numbers. */
function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** A round upper bound for the y axis (1, 2, 5 x 10^n). */
function niceCeil(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

/**
 * Draw `points` ([{at: Date, latency: seconds, label}]) into the <svg> `chart`, and a
 * one-line summary into `summary`.
 */
export function drawLatency(chart, summary, points, now = Date.now()) {
  chart.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  const inner = { w: WIDTH - PAD.left - PAD.right, h: HEIGHT - PAD.top - PAD.bottom };
  const sorted = points.map((p) => p.latency).sort((a, b) => a - b);
  const top = niceCeil(sorted.length ? sorted[sorted.length - 1] : 1);
  const x = (at) => PAD.left + ((at - (now - WINDOW_MS)) / WINDOW_MS) * inner.w;
  const y = (s) => PAD.top + inner.h - (Math.min(s, top) / top) * inner.h;

  const parts = [];
  for (const tick of [0, top / 2, top]) {
    parts.push(
      svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick) }),
      svg("text", { class: "axis", x: PAD.left - 5, y: y(tick) + 3, "text-anchor": "end" },
        tick === 0 ? "0" : duration(tick)),
    );
  }
  for (const [minutes, anchor] of [[60, "start"], [30, "middle"], [0, "end"]]) {
    parts.push(svg("text", { class: "axis", x: x(now - minutes * 60000), y: HEIGHT - 6,
      "text-anchor": anchor }, minutes ? `−${minutes} min` : "now"));
  }
  const p50 = percentile(sorted, 50);
  if (p50 !== null) {
    parts.push(svg("line", { class: "median", x1: PAD.left, x2: WIDTH - PAD.right,
      y1: y(p50), y2: y(p50) }));
  }
  for (const point of points) {
    parts.push(svg("circle", { class: "dot", cx: x(point.at.getTime()), cy: y(point.latency), r: 3.2 },
      svg("title", {}, `${point.label}: ${duration(point.latency)} (recorded ${time(point.at.toISOString())})`)));
  }
  fill(chart, ...parts);
  chart.dataset.points = String(points.length);

  if (!points.length) {
    fill(summary, "No fills recorded in the last hour.");
    return;
  }
  const p95 = percentile(sorted, 95);
  fill(summary, `${points.length} fill${points.length === 1 ? "" : "s"} · median ${duration(p50)}`
    + ` · p95 ${duration(p95)} · max ${duration(sorted[sorted.length - 1])}`);
}
