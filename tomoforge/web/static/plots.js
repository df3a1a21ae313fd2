// Interactive line plots drawn as SVG from plot data (tomoforge/io/plot_data.py): hover a point for its
// values, click a legend entry to hide or show its series, drag across the plot to zoom on x, double-click
// to zoom out. Text from the data is only ever set as textContent.
"use strict";

const PLOT_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

function plotSvg(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// About five round tick values covering [lo, hi].
function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

function tickLabel(v) {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

// Draw `plot` into the <svg> `box`. Options: width, height, xRange ([lo, hi] or null), hidden (Set of series
// indices), pointColours (series index -> array of colours), highlight ({series, index}), onPick(series, index).
function drawPlot(box, plot, options = {}) {
  const W = options.width || 640, H = options.height || 320;
  const right = plot.series.some(s => s.axis === "right");
  const L = 64, R = right ? 64 : 16, T = 28, B = 44;
  const hidden = options.hidden || new Set();
  const logY = Boolean(plot.log_y);
  const ty = (v) => (logY ? (v > 0 ? Math.log10(v) : null) : v);
  const points = plot.series.map(s => s.x.map((x, i) => [x, s.y[i] === null || s.y[i] === undefined ? null : ty(s.y[i])]));
  const allX = plot.series.flatMap(s => s.x);
  const [fx0, fx1] = options.xRange || [Math.min(...allX), Math.max(...allX)];
  const inRange = (x) => x >= fx0 && x <= fx1;
  const extent = (axis) => {
    const values = [];
    plot.series.forEach((s, k) => {
      if ((s.axis || "left") !== axis || hidden.has(k)) return;
      points[k].forEach(([x, y]) => { if (y !== null && inRange(x)) values.push(y); });
    });
    if (axis === "left") for (const m of plot.markers || []) if (m.axis === "y" && ty(m.value) !== null) values.push(ty(m.value));
    if (!values.length) return [0, 1];
    let [lo, hi] = [Math.min(...values), Math.max(...values)];
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  };
  const [y0, y1] = extent("left"), [z0, z1] = extent("right");
  const px = (x) => L + ((x - fx0) / ((fx1 - fx0) || 1)) * (W - L - R);
  const py = (y, axis) => {
    const [a, b] = axis === "right" ? [z0, z1] : [y0, y1];
    return H - B - ((y - a) / ((b - a) || 1)) * (H - B - T);
  };
  box.setAttribute("width", W); box.setAttribute("height", H); box.setAttribute("viewBox", `0 0 ${W} ${H}`);
  box.classList.add("plot");
  const parts = [plotSvg("text", { x: L, y: 16, "font-size": 12, "font-weight": "bold" }, plot.title)];
  const frame = plotSvg("rect", { x: L, y: T, width: W - L - R, height: H - B - T, fill: "#fff", stroke: "#999", class: "frame" });
  parts.push(frame);
  for (const v of niceTicks(fx0, fx1)) {
    parts.push(plotSvg("line", { x1: px(v), y1: H - B, x2: px(v), y2: H - B + 4, stroke: "#666" }));
    parts.push(plotSvg("text", { x: px(v), y: H - B + 16, "font-size": 10, "text-anchor": "middle" }, tickLabel(v)));
  }
  for (const [axis, lo, hi, x, anchor] of [["left", y0, y1, L - 6, "end"], ["right", z0, z1, W - R + 6, "start"]]) {
    if (axis === "right" && !right) continue;
    for (const v of niceTicks(lo, hi)) {
      const label = logY && axis === "left" ? tickLabel(Math.pow(10, v)) : tickLabel(v);
      parts.push(plotSvg("text", { x, y: py(v, axis) + 3, "font-size": 10, "text-anchor": anchor }, label));
    }
  }
  parts.push(plotSvg("text", { x: (L + W - R) / 2, y: H - 8, "font-size": 11, "text-anchor": "middle" }, plot.x_label));
  parts.push(plotSvg("text", { x: 12, y: (T + H - B) / 2, "font-size": 11, "text-anchor": "middle", transform: `rotate(-90 12 ${(T + H - B) / 2})` }, plot.y_label));
  if (right) parts.push(plotSvg("text", { x: W - 8, y: (T + H - B) / 2, "font-size": 11, "text-anchor": "middle", transform: `rotate(90 ${W - 8} ${(T + H - B) / 2})` }, plot.y2_label || ""));
  for (const m of plot.markers || []) {
    const line = m.axis === "y"
      ? (ty(m.value) === null ? null : { x1: L, x2: W - R, y1: py(ty(m.value), "left"), y2: py(ty(m.value), "left") })
      : (inRange(m.value) ? { x1: px(m.value), x2: px(m.value), y1: T, y2: H - B } : null);
    if (!line) continue;
    parts.push(plotSvg("line", { ...line, stroke: "#555", "stroke-dasharray": "4 3", class: "marker" }));
    if (m.label) parts.push(plotSvg("text", { x: line.x2 - 2, y: line.y1 - 3, "font-size": 9, "text-anchor": "end", fill: "#555" }, m.label));
  }
  const shown = [];  // [screen x, screen y, series, index] for hovering
  plot.series.forEach((s, k) => {
    if (hidden.has(k)) return;
    const colour = s.colour || PLOT_PALETTE[k % PLOT_PALETTE.length];
    const style = s.style || "line+points";
    const visible = points[k].map(([x, y], i) => [x, y, i]).filter(([x, y]) => y !== null && inRange(x));
    if (style !== "points" && visible.length) {
      const path = visible.map(([x, y]) => `${px(x).toFixed(1)},${py(y, s.axis).toFixed(1)}`).join(" ");
      parts.push(plotSvg("polyline", { points: path, fill: "none", stroke: colour, "stroke-width": 1.4, class: "series", "data-series": k }));
    }
    for (const [x, y, i] of visible) {
      const cx = px(x), cy = py(y, s.axis);
      shown.push([cx, cy, k, i]);
      if (style === "line") continue;
      const fill = (options.pointColours && options.pointColours[k] && options.pointColours[k][i]) || colour;
      const lit = options.highlight && options.highlight.series === k && options.highlight.index === i;
      const dot = plotSvg("circle", { cx, cy, r: lit ? 6 : 3.5, fill: s.hollow && s.hollow[i] ? "#fff" : fill, stroke: lit ? "#000" : fill,
        class: "point", "data-series": k, "data-index": i });
      if (options.onPick) { dot.style.cursor = "pointer"; dot.addEventListener("click", () => options.onPick(k, i)); }
      parts.push(dot);
    }
  });
  let lx = L + 8;
  plot.series.forEach((s, k) => {
    const colour = s.colour || PLOT_PALETTE[k % PLOT_PALETTE.length];
    const entry = plotSvg("g", { class: "legend", "data-series": k, opacity: hidden.has(k) ? 0.35 : 1 });
    entry.style.cursor = "pointer";
    entry.appendChild(plotSvg("rect", { x: lx, y: T + 6, width: 10, height: 10, fill: colour }));
    const label = plotSvg("text", { x: lx + 14, y: T + 15, "font-size": 10 }, s.name);
    entry.appendChild(label);
    entry.addEventListener("click", () => {
      const next = new Set(hidden);
      if (next.has(k)) next.delete(k); else next.add(k);
      drawPlot(box, plot, { ...options, hidden: next });
    });
    parts.push(entry);
    lx += 24 + 6.2 * s.name.length;
  });
  const tip = plotSvg("text", { x: W - R - 4, y: 16, "font-size": 11, "text-anchor": "end", class: "tooltip" });
  const ring = plotSvg("circle", { r: 7, fill: "none", stroke: "#000", visibility: "hidden", "pointer-events": "none" });
  const band = plotSvg("rect", { y: T, height: H - B - T, fill: "#0277bd", opacity: 0.15, visibility: "hidden", "pointer-events": "none" });
  parts.push(tip, ring, band);
  box.replaceChildren(...parts);
  const local = (event) => {
    const r = box.getBoundingClientRect();
    return [(event.clientX - r.left) * (W / r.width), (event.clientY - r.top) * (H / r.height)];
  };
  let dragFrom = null;
  box.onmousemove = (event) => {
    const [mx, my] = local(event);
    if (dragFrom !== null) {
      band.setAttribute("x", Math.min(dragFrom, mx)); band.setAttribute("width", Math.abs(mx - dragFrom));
      band.setAttribute("visibility", "visible");
    }
    let best = null, bestD = 400;  // within 20 px
    for (const p of shown) { const d = (p[0] - mx) ** 2 + (p[1] - my) ** 2; if (d < bestD) { best = p; bestD = d; } }
    if (!best) { tip.textContent = ""; ring.setAttribute("visibility", "hidden"); return; }
    const [cx, cy, k, i] = best;
    const s = plot.series[k];
    tip.textContent = `${s.name}: ${plot.x_label} ${tickLabel(s.x[i])}, ${tickLabel(s.y[i])}`;
    ring.setAttribute("cx", cx); ring.setAttribute("cy", cy); ring.setAttribute("visibility", "visible");
  };
  box.onmouseleave = () => { tip.textContent = ""; ring.setAttribute("visibility", "hidden"); };
  box.onmousedown = (event) => { const [mx] = local(event); if (mx >= L && mx <= W - R) dragFrom = mx; };
  box.onmouseup = (event) => {
    const [mx] = local(event);
    const from = dragFrom;
    dragFrom = null;
    band.setAttribute("visibility", "hidden");
    if (from === null || Math.abs(mx - from) < 6) return;
    const toX = (sx) => fx0 + ((sx - L) / (W - L - R)) * (fx1 - fx0);
    const range = [toX(Math.max(L, Math.min(from, mx))), toX(Math.min(W - R, Math.max(from, mx)))];
    drawPlot(box, plot, { ...options, hidden, xRange: range, fullRange: options.fullRange || [fx0, fx1] });
  };
  box.ondblclick = () => drawPlot(box, plot, { ...options, hidden, xRange: null });
}

// Draw every plot data file listed in `paths` (project-relative) into `container`, one figure each.
async function drawPlotFiles(container, paths) {
  const figures = [];
  for (const path of paths) {
    const figure = document.createElement("figure");
    figure.className = "interactive-plot";
    figure.dataset.path = path;
    const box = plotSvg("svg", { role: "img" });
    figure.appendChild(box);
    const caption = document.createElement("figcaption");
    caption.textContent = path.split("/").pop();
    figure.appendChild(caption);
    figures.push(figure);
    try {
      const response = await fetch(`/files/${path.split("/").map(encodeURIComponent).join("/")}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(response.statusText);
      drawPlot(box, await response.json());
    } catch (error) {
      caption.textContent += ` (not shown: ${error.message})`;
    }
  }
  container.replaceChildren(...figures);
}
