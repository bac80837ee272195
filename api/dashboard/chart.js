// The fill-detection-latency chart: one dot per fill of the window, at the time ordersync
// recorded it (x) and how long after the broker's execution that was (y, seconds).

import { duration, fill, svg, time } from "./dom.js";

const WIDTH = 340;
const HEIGHT = 150;
const PAD = { left: 40, right: 10, top: 10, bottom: 22 };

/** A round upper bound for the y axis (1, 2, 5 x 10^n). */
function niceCeil(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

/**
 * Draw `points` ([{at: Date, latency: seconds}]) into the <svg> `chart` and the series'
 * summary (the API's `/fill-latency`: window_s, count, p50_s, p90_s, p99_s, max_s) into
 * `summary`.
 */
export function drawLatency(chart, summary, points, series, now = Date.now()) {
  const windowMs = series.window_s * 1000;
  chart.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  const inner = { w: WIDTH - PAD.left - PAD.right, h: HEIGHT - PAD.top - PAD.bottom };
  const top = niceCeil(Math.max(0, ...points.map((p) => p.latency)));
  const x = (at) => PAD.left + Math.max(0, (at - (now - windowMs)) / windowMs) * inner.w;
  const y = (s) => PAD.top + inner.h - (Math.min(s, top) / top) * inner.h;

  const parts = [];
  for (const tick of [0, top / 2, top]) {
    parts.push(
      svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick) }),
      svg("text", { class: "axis", x: PAD.left - 5, y: y(tick) + 3, "text-anchor": "end" },
        tick === 0 ? "0" : duration(tick)),
    );
  }
  const minutes = Math.round(series.window_s / 60);
  for (const [back, anchor] of [[minutes, "start"], [minutes / 2, "middle"], [0, "end"]]) {
    parts.push(svg("text", { class: "axis", x: x(now - back * 60000), y: HEIGHT - 6,
      "text-anchor": anchor }, back ? `−${back} min` : "now"));
  }
  if (series.p50_s !== null) {
    parts.push(svg("line", { class: "median", x1: PAD.left, x2: WIDTH - PAD.right,
      y1: y(series.p50_s), y2: y(series.p50_s) }, svg("title", {}, `median ${duration(series.p50_s)}`)));
  }
  for (const point of points) {
    const label = `${duration(point.latency)}, recorded ${time(point.at.toISOString())}`;
    parts.push(svg("circle", { class: "dot", cx: x(point.at.getTime()), cy: y(point.latency), r: 3.2 },
      svg("title", {}, label)));
  }
  fill(chart, ...parts);
  chart.dataset.points = String(points.length);

  if (!series.count) {
    fill(summary, "No fills recorded in this window.");
    return;
  }
  fill(summary, `${series.count} fill${series.count === 1 ? "" : "s"} · median ${duration(series.p50_s)}`
    + ` · p90 ${duration(series.p90_s)} · p99 ${duration(series.p99_s)} · max ${duration(series.max_s)}`);
}
