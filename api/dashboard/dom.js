// Building elements and formatting values. Text always goes in through textContent (or an
// attribute), never as HTML: whatever the API returns cannot become markup.

/** An element: `h("td", {class: "num", dataset: {status: "NEW"}}, "text", child, ...)`. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element, same calling convention as `h`. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// --- values -----------------------------------------------------------------------------------

/** A decimal string without trailing zeros ("1.500000" -> "1.5"); never through a float. */
export function num(value) {
  if (value === null || value === undefined || value === "") return "–";
  const text = String(value);
  if (!text.includes(".")) return text;
  return text.replace(/\.?0+$/, "");
}

/** A money string to two decimals at least ("187.2" -> "187.20"), no float. */
export function money(value) {
  if (value === null || value === undefined || value === "") return "–";
  const text = num(value);
  const [whole, fraction = ""] = text.split(".");
  return `${whole}.${fraction.padEnd(2, "0")}`;
}

/** "positive", "negative" or "zero" for a signed decimal string. */
export function sign(value) {
  if (value === null || value === undefined) return "zero";
  const text = String(value);
  if (text.startsWith("-")) return "negative";
  return /[1-9]/.test(text) ? "positive" : "zero";
}

const pad = (n) => String(n).padStart(2, "0");

/** Local time: "14:03:22" today, "Dec 01 14:03" otherwise; "–" for none. */
export function time(iso) {
  if (!iso) return "–";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return String(iso);
  const clock = `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
  if (at.toDateString() === new Date().toDateString()) return clock;
  const month = at.toLocaleString("en", { month: "short" });
  return `${month} ${pad(at.getDate())} ${clock.slice(0, 5)}`;
}

/** "12 s ago", "4 min ago", "3 h ago". */
export function ago(iso) {
  if (!iso) return "never";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return String(iso);
  if (seconds < 1) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** Seconds as "0.42 s", "12 s", "3.1 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Number(seconds);
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${(s / 60).toFixed(1)} min`;
}

/** A cell with a time: short text, the exact ISO time as its tooltip. */
export function timeCell(iso, tag = "td") {
  return h(tag, { class: "time", title: iso || "" }, time(iso));
}

/** A short id: the first 8 characters, the whole id as tooltip. */
export function shortId(id) {
  if (!id) return h("span", { class: "muted" }, "–");
  return h("span", { class: "mono", title: id }, id.length > 12 ? `${id.slice(0, 8)}…` : id);
}
