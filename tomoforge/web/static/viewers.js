// tomoforge viewers: tilt series, CTF, tomogram (loaded after app.js, whose helpers they use).
"use strict";

// --- what the tilt-series and CTF viewers share: keys, and "save" as a new exclusion run ----------
function exclusionKeys(items, getIndex, setIndex, excludedSet, show) {
  // ← → (↑ ↓) move between the items in tilt order; the space bar excludes or includes the current one
  document.addEventListener("keydown", (event) => {
    const list = items();
    if (!list || ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) return;
    const i = getIndex();
    if (event.key === "ArrowRight" || event.key === "ArrowDown") setIndex(Math.min(i + 1, list.length - 1));
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") setIndex(Math.max(i - 1, 0));
    else if (event.key === " ") {
      const set = excludedSet();
      const order = list[i].acquisition_order;
      if (set.has(order)) set.delete(order); else set.add(order);
    } else return;
    event.preventDefault();
    show();
  });
}

async function loadExclusions(url, field, excluded, select) {
  // one item's views or entries; the first time an item is shown, its stored exclusions
  const data = await api(url);
  if (!excluded[data.name]) excluded[data.name] = new Set(data[field].filter(v => v.excluded).map(v => v.acquisition_order));
  if (!select.options.length) for (const s of data.series) select.appendChild(el("option", s, { value: s }));
  select.value = data.name;
  return data;
}

function saveButton(url, excluded, extra, message) {
  document.getElementById("save").addEventListener("click", async () => {
    const body = { ...extra(), excluded: {} };
    for (const [name, set] of Object.entries(excluded)) body.excluded[name] = [...set].sort((a, b) => a - b);
    try {
      const out = await api(url, { body });
      document.getElementById("saved").replaceChildren(el("span", "saved as run(s) "), ...out.runs.map(r => el("a", r, { href: `/runs/${r}`, class: "saved-run" })));
      message.textContent = "";
    } catch (e) { message.textContent = e.message; }
  });
}

// --- tilt-series viewer -----------------------------------------------------------------------
function viewerPage() {
  const { run, output } = document.body.dataset;
  const select = document.getElementById("series");
  const image = document.getElementById("view-image");
  const info = document.getElementById("view-info");
  const strip = document.getElementById("strip");
  const message = document.getElementById("message");
  const excluded = {};  // series name -> Set of acquisition orders, as the viewer shows them
  let data = null;
  let current = 0;
  const fmt = (v, digits, unit) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(digits)}${unit}`);
  const show = () => {
    const v = data.views[current];
    const off = excluded[data.name].has(v.acquisition_order);
    image.src = `/api/runs/${run}/sets/${encodeURIComponent(output)}/${encodeURIComponent(data.name)}/${v.acquisition_order}.png?bin=${document.getElementById("bin").value}`;
    image.className = off ? "excluded" : "";
    info.textContent = `view ${current + 1}/${data.views.length}: tilt ${fmt(v.tilt_angle_deg, 1, "°")}, acquisition ${v.acquisition_order}, ` +
      `dose ${fmt(v.accumulated_dose_e_A2, 1, " e/Å²")}, defocus ${fmt(v.nominal_defocus_A === null ? null : v.nominal_defocus_A / 1e4, 2, " µm")}, ` +
      `shift (${fmt(v.x_shift_A, 1, "")}, ${fmt(v.y_shift_A, 1, "")}) Å, rotation ${fmt(v.z_rot_deg, 1, "°")}${off ? " — excluded" : ""}`;
    strip.replaceChildren(...data.views.map((w, i) => {
      const cls = [i === current ? "current" : "", excluded[data.name].has(w.acquisition_order) ? "excluded" : ""].join(" ").trim();
      const span = el("span", fmt(w.tilt_angle_deg, 0, "°"), { "data-index": i, "data-order": w.acquisition_order, class: cls });
      return span;
    }));
  };
  const load = async (name) => {
    data = await loadExclusions(`/api/runs/${run}/sets/${encodeURIComponent(output)}/${encodeURIComponent(name)}`, "views", excluded, select);
    current = Math.min(current, data.views.length - 1);
    show();
  };
  exclusionKeys(() => data && data.views, () => current, (i) => { current = i; }, () => excluded[data.name], show);
  strip.addEventListener("click", (event) => { if (event.target.dataset.index) { current = Number(event.target.dataset.index); show(); } });
  select.addEventListener("change", () => load(select.value));
  document.getElementById("bin").addEventListener("change", show);
  saveButton(`/api/runs/${run}/sets/${encodeURIComponent(output)}/exclude`, excluded, () => ({ restack: document.getElementById("restack").checked }), message);
  load(document.body.dataset.first).catch(e => { message.textContent = e.message; });
}

// --- tomogram viewer --------------------------------------------------------------------------
const SLICE_AXES = { xy: { across: 2, cols: 0, rows: 1 }, xz: { across: 1, cols: 0, rows: 2 }, yz: { across: 0, cols: 1, rows: 2 } };

// Show the slice its slider names in a figure.slice (img + svg.overlay sized alike); `base` is the volume's API
// path, `query` the contrast (and which map). Returns what an overlay needs.
function showSlice(figure, info, base, bin, zoom, query) {
  const axis = figure.dataset.axis;
  const geometry = SLICE_AXES[axis];
  const index = Number(figure.querySelector(".slice-index").value);
  const width = Math.floor(info.size_xyz[geometry.cols] / bin) * bin;
  const height = Math.floor(info.size_xyz[geometry.rows] / bin) * bin;
  const img = figure.querySelector("img");
  img.width = width * zoom; img.height = height * zoom;
  img.src = `${base}/${axis}/${index}.png?bin=${bin}&${query}`;
  figure.querySelector(".slice-label").textContent = `${index + 1}/${info.size_xyz[geometry.across]}`;
  const overlay = figure.querySelector("svg.overlay");
  if (overlay) {
    overlay.setAttribute("width", width * zoom); overlay.setAttribute("height", height * zoom);
    overlay.replaceChildren();
  }
  return { axis, geometry, index, zoom };
}

// Each slider to the middle of its axis.
function centreSliders(figures, info) {
  for (const figure of figures) {
    const n = info.size_xyz[SLICE_AXES[figure.dataset.axis].across];
    const slider = figure.querySelector(".slice-index");
    slider.max = n - 1; slider.value = Math.floor(n / 2);
  }
}

// The slider and the mouse wheel over a slice move it; `draw(figure)` shows the new one.
function sliceControls(figures, draw) {
  for (const figure of figures) {
    const slider = figure.querySelector(".slice-index");
    slider.addEventListener("input", () => draw(figure));
    figure.querySelector(".slice-box").addEventListener("wheel", (event) => {
      event.preventDefault();
      slider.value = Math.min(Number(slider.max), Math.max(0, Number(slider.value) + (event.deltaY > 0 ? 1 : -1)));
      draw(figure);
    }, { passive: false });
  }
}

function tomogramPage() {
  const { run, output } = document.body.dataset;
  const select = document.getElementById("tomogram");
  const message = document.getElementById("message");
  const value = (id) => document.getElementById(id).value;
  let info = null;
  const base = () => `/api/runs/${run}/tomograms/${encodeURIComponent(output)}/${encodeURIComponent(info.name)}`;
  const draw = async (figure) => {
    const { axis, geometry, index, zoom } = showSlice(figure, info, base(), Number(value("tomo-bin")), Number(value("zoom")),
      `low=${value("low")}&high=${value("high")}`);
    const overlay = figure.querySelector("svg.overlay");
    for (const q of picks[info.name] || []) {  // the user's own points on this slice (within the half width)
      if (Math.abs(q[geometry.across] - index) > Number(value("half-width"))) continue;
      overlay.appendChild(svg("rect", { x: q[geometry.cols] * zoom - 5, y: q[geometry.rows] * zoom - 5, width: 10, height: 10, fill: "none", stroke: "#00e5ff", "stroke-width": 2, class: "pick" }));
    }
    const set = value("coordinate-set");
    if (!set) return;
    try {
      const points = await api(`${base()}/${axis}/${index}/coordinates?set=${encodeURIComponent(set)}&half_width=${value("half-width")}`);
      for (const p of points) {
        const xyz = [p.x, p.y, p.z];
        const cx = xyz[geometry.cols] * zoom, cy = xyz[geometry.rows] * zoom;
        const dx = p.direction[geometry.cols], dy = p.direction[geometry.rows];
        overlay.appendChild(svg("circle", { cx, cy, r: 6, fill: "none", stroke: "#ffeb3b", "stroke-width": 2, class: "point", "data-number": p.number }));
        overlay.appendChild(svg("line", { x1: cx, y1: cy, x2: cx + 12 * dx, y2: cy + 12 * dy, stroke: "#ffeb3b", "stroke-width": 2 }));
      }
    } catch (e) { message.textContent = e.message; }
  };
  const figures = [...document.querySelectorAll("figure.slice")];
  const drawAll = () => figures.forEach(draw);
  const picks = {};  // tomogram name -> [[x, y, z] voxels] clicked on the slices
  const countPicks = () => { document.getElementById("pick-count").textContent = Object.values(picks).reduce((n, l) => n + l.length, 0); };
  for (const figure of figures) {
    figure.querySelector("img").addEventListener("click", (event) => {
      const geometry = SLICE_AXES[figure.dataset.axis];
      const zoom = Number(value("zoom"));
      const point = [0, 0, 0];
      point[geometry.cols] = event.offsetX / zoom;
      point[geometry.rows] = event.offsetY / zoom;
      point[geometry.across] = Number(figure.querySelector(".slice-index").value);
      (picks[info.name] = picks[info.name] || []).push(point.map(v => Math.round(v * 10) / 10));
      countPicks();
      drawAll();
    });
  }
  document.getElementById("clear-picks").addEventListener("click", () => { for (const k of Object.keys(picks)) delete picks[k]; countPicks(); drawAll(); });
  document.getElementById("save-picks").addEventListener("click", async () => {
    try {
      const out = await api(`/api/runs/${run}/tomograms/${encodeURIComponent(output)}/picks`, { body: { points: picks } });
      document.getElementById("saved").replaceChildren(el("span", "saved as run "), el("a", out.run, { href: `/runs/${out.run}`, class: "saved-run" }));
      message.textContent = "";
    } catch (e) { message.textContent = e.message; }
  });
  const load = async (name) => {
    info = await api(`/api/runs/${run}/tomograms/${encodeURIComponent(output)}/${encodeURIComponent(name)}`);
    if (!select.options.length) for (const t of info.series) select.appendChild(el("option", t, { value: t }));
    select.value = info.name;
    document.getElementById("size").textContent = `${info.size_xyz.join(" × ")} voxels of ${info.pixel_size_A} Å`;
    const sets = document.getElementById("coordinate-set");
    sets.replaceChildren(el("option", "(none)", { value: "" }), ...info.coordinate_sets.map(c => el("option", `${c.set} (${c.count} ${c.kind})`, { value: c.set })));
    if (info.coordinate_sets.length) sets.value = info.coordinate_sets[0].set;
    centreSliders(figures, info);
    drawAll();
  };
  sliceControls(figures, draw);
  for (const id of ["zoom", "tomo-bin", "low", "high", "coordinate-set", "half-width"]) document.getElementById(id).addEventListener("change", drawAll);
  select.addEventListener("change", () => load(select.value));
  load(document.body.dataset.first).catch(e => { message.textContent = e.message; });
}

// --- CTF viewer -------------------------------------------------------------------------------
// One CTF quantity against the tilt angle (drawPlot in plots.js); excluded tilts red, the current one ringed.
function ctfPlot(box, entries, field, scale, caption, current, isExcluded, onPick) {
  const plot = {
    title: "", x_label: "tilt angle (°)", y_label: caption,
    series: [{ name: caption, x: entries.map(e => e.tilt_angle_deg), y: entries.map(e => (e[field] === null ? null : e[field] * scale)) }],
  };
  drawPlot(box, plot, { width: 380, height: 220, pointColours: [entries.map(e => (isExcluded(e) ? "#c62828" : "#0277bd"))],
    highlight: { series: 0, index: current }, onPick: (k, i) => onPick(i) });
}

function ctfPage() {
  const { run, output } = document.body.dataset;
  const select = document.getElementById("series");
  const message = document.getElementById("message");
  const excluded = {};
  let data = null;
  let current = 0;
  const base = () => `/api/runs/${run}/ctf/${encodeURIComponent(output)}/${encodeURIComponent(data.name)}`;
  const show = () => {
    const e = data.entries[current];
    const off = excluded[data.name].has(e.acquisition_order);
    document.getElementById("entry-info").textContent = `tilt ${current + 1}/${data.entries.length}: ${e.tilt_angle_deg.toFixed(1)}°, acquisition ${e.acquisition_order}, ` +
      `defocus ${(e.defocus_A / 1e4).toFixed(3)} µm, astigmatism ${e.astigmatism_A.toFixed(0)} Å at ${e.astigmatism_angle_deg.toFixed(0)}°, ` +
      `fit ${e.fit_resolution_A === null ? "–" : e.fit_resolution_A.toFixed(1) + " Å"}${off ? " — excluded" : ""}`;
    for (const figure of document.querySelectorAll(".ctf-plots figure")) {
      ctfPlot(figure.querySelector("svg"), data.entries, figure.dataset.field, Number(figure.dataset.scale),
        figure.querySelector("figcaption").textContent, current,
        (x) => excluded[data.name].has(x.acquisition_order), (i) => { current = i; show(); });
    }
    const spectrum = document.getElementById("spectrum");
    spectrum.hidden = !data.spectra;
    if (data.spectra) spectrum.src = `${base()}/${e.acquisition_order}.png`;
  };
  const load = async (name) => {
    data = await loadExclusions(`/api/runs/${run}/ctf/${encodeURIComponent(output)}/${encodeURIComponent(name)}`, "entries", excluded, select);
    current = Math.min(current, data.entries.length - 1);
    show();
  };
  exclusionKeys(() => data && data.entries, () => current, (i) => { current = i; }, () => excluded[data.name], show);
  select.addEventListener("change", () => load(select.value));
  saveButton(`/api/runs/${run}/ctf/${encodeURIComponent(output)}/exclude`, excluded, () => ({}), message);
  load(document.body.dataset.first).catch(e => { message.textContent = e.message; });
}

// --- map viewer (averages): orthogonal slices of the map, a half map or the mask; its FSC curves -----------
function mapPage() {
  const { run, output } = document.body.dataset;
  const select = document.getElementById("map");
  const message = document.getElementById("message");
  const value = (id) => document.getElementById(id).value;
  const figures = [...document.querySelectorAll("figure.slice")];
  let info = null;
  const base = () => `/api/runs/${run}/tomograms/${encodeURIComponent(output)}/${encodeURIComponent(info.name)}`;
  const draw = (figure) => showSlice(figure, info, base(), 1, Number(value("zoom")),
    `low=${value("low")}&high=${value("high")}&which=${encodeURIComponent(value("which"))}`);
  const drawAll = () => figures.forEach(draw);
  const load = async (name) => {
    info = await api(`/api/runs/${run}/maps/${encodeURIComponent(output)}/${encodeURIComponent(name)}`);
    if (!select.options.length) for (const t of info.series) select.appendChild(el("option", t, { value: t }));
    select.value = info.name;
    const which = document.getElementById("which");
    which.replaceChildren(...info.maps.map(m => el("option", m, { value: m })));
    document.getElementById("size").textContent =
      `${info.size_xyz.join(" × ")} voxels of ${info.pixel_size_A} Å, symmetry ${info.symmetry}` +
      (info.resolution_A ? `, ${info.resolution_A.toFixed(2)} Å at FSC 0.143` : "");
    const fsc = document.getElementById("fsc");
    fsc.hidden = !info.fsc;
    if (info.fsc) drawPlot(fsc.querySelector("svg"), info.fsc);
    centreSliders(figures, info);
    drawAll();
  };
  sliceControls(figures, draw);
  for (const id of ["zoom", "low", "high", "which"]) document.getElementById(id).addEventListener("change", drawAll);
  select.addEventListener("change", () => load(select.value));
  load(document.body.dataset.first).catch(e => { message.textContent = e.message; });
}

Object.assign(PAGES, { viewer: viewerPage, tomogram: tomogramPage, ctf: ctfPage, map: mapPage });
