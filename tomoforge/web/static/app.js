// tomoforge web pages. User text is only ever set as textContent or attribute values, never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = { finished: "#1a7f37", failed: "#c62828", running: "#0277bd", aborted: "#b26a00",
                  scheduled: "#6a1b9a", queued: "#6a1b9a", saved: "#777" };
const POLL_MS = 2000;

async function api(path, options = {}) {
  const init = { headers: { "X-Tomoforge": "1" }, credentials: "same-origin", ...options };
  if (options.body !== undefined) {
    init.method = init.method || "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { const e = new Error(data.message || response.statusText); e.data = data; throw e; }
  return data;
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function seconds(s) {
  if (s === null || s === undefined) return "";
  return s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`;
}

// --- project page -----------------------------------------------------------------------------
function layout(runs) {
  const depth = {};
  const byId = Object.fromEntries(runs.map(r => [r.id, r]));
  const visit = (r) => {
    if (depth[r.id] !== undefined) return depth[r.id];
    depth[r.id] = 0;
    let d = 0;
    for (const i of r.inputs) if (byId[i.run]) d = Math.max(d, visit(byId[i.run]) + 1);
    return (depth[r.id] = d);
  };
  runs.forEach(visit);
  const rows = {};
  const pos = {};
  for (const r of runs) {
    const d = depth[r.id];
    rows[d] = (rows[d] || 0) + 1;
    pos[r.id] = { x: 20 + d * 190, y: 20 + (rows[d] - 1) * 56 };
  }
  return pos;
}

function drawGraph(box, runs, edges) {
  const pos = layout(runs);
  const shown = new Set(runs.map(r => r.id));
  const width = Math.max(...Object.values(pos).map(p => p.x), 0) + 190;
  const height = Math.max(...Object.values(pos).map(p => p.y), 0) + 60;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
  marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#555" }));
  defs.appendChild(marker);
  root.appendChild(defs);
  for (const e of edges) {
    if (!shown.has(e.from) || !shown.has(e.to)) continue;
    const a = pos[e.from], b = pos[e.to];
    const line = svg("line", { x1: a.x + 150, y1: a.y + 20, x2: b.x, y2: b.y + 20, stroke: "#555", "marker-end": "url(#arrow)", class: "edge" });
    line.appendChild(svg("title", {}, `${e.from}.${e.output} → ${e.to} (${e.input})`));
    root.appendChild(line);
  }
  for (const r of runs) {
    const p = pos[r.id];
    const link = svg("a", { href: `/runs/${r.id}`, class: "node", "data-run": r.id });
    link.appendChild(svg("rect", { x: p.x, y: p.y, width: 150, height: 40, rx: 6, fill: "#fff", stroke: COLOURS[r.state] || "#777", "stroke-width": 3 }));
    link.appendChild(svg("text", { x: p.x + 6, y: p.y + 16, "font-size": 12 }, `${r.id} ${r.protocol}`));
    link.appendChild(svg("text", { x: p.x + 6, y: p.y + 32, "font-size": 11, fill: COLOURS[r.state] || "#777" }, `${r.state} ${r.label}`.slice(0, 28)));
    link.appendChild(svg("title", {}, `${r.protocol} ${r.label} (${r.state})`));
    root.appendChild(link);
  }
  box.replaceChildren(root);
}

function projectPage() {
  const label = document.getElementById("filter-label");
  const state = document.getElementById("filter-state");
  let last = null;
  const render = () => {
    if (!last) return;
    const text = label.value.trim().toLowerCase();
    const runs = last.runs.filter(r => (!text || r.label.toLowerCase().includes(text)) && (!state.value || r.state === state.value));
    const body = document.querySelector("#runs tbody");
    body.replaceChildren(...runs.map(r => {
      const tr = el("tr", undefined, { "data-run": r.id });
      const link = el("a", r.id, { href: `/runs/${r.id}` });
      const first = el("td"); first.appendChild(link); tr.appendChild(first);
      tr.appendChild(el("td", r.protocol));
      tr.appendChild(el("td", r.label));
      tr.appendChild(el("td", r.state, { class: `state-${r.state}` }));
      tr.appendChild(el("td", seconds(r.duration_s)));
      tr.appendChild(el("td", r.outputs.map(o => `${o.name} (${o.count}${o.state === "open" ? ", open" : ""})`).join(", ")));
      return tr;
    }));
    drawGraph(document.getElementById("graph"), runs, last.edges);
  };
  const poll = async () => {
    try { last = await api("/api/project"); render(); } catch (e) { /* keep the last view */ }
    setTimeout(poll, POLL_MS);
  };
  label.addEventListener("input", render);
  state.addEventListener("change", render);
  poll();
}

// --- run page ---------------------------------------------------------------------------------
function runPage() {
  const runId = document.body.dataset.run;
  const message = document.getElementById("message");
  let shownImages = "";
  let shownPlots = "";
  const render = (r) => {
    const state = document.getElementById("state");
    state.textContent = r.state; state.className = `state state-${r.state}`;
    document.getElementById("duration").textContent = seconds(r.duration_s);
    document.getElementById("label").textContent = r.label;
    document.getElementById("comment").textContent = r.comment;
    document.getElementById("params").replaceChildren(...Object.entries(r.params).map(([k, v]) => {
      const tr = el("tr"); tr.appendChild(el("td", k)); tr.appendChild(el("td", JSON.stringify(v))); return tr;
    }));
    document.getElementById("inputs").replaceChildren(...r.inputs.map(i => {
      const li = el("li", `${i.name}: `); li.appendChild(el("a", `${i.run}.${i.output}${i.filter ? `[${i.filter}]` : ""}`, { href: `/runs/${i.run}` })); return li;
    }));
    document.getElementById("outputs").replaceChildren(...r.outputs.map(o => {
      const li = el("li", `${o.name}: ${o.count} ${o.kind} (${o.state}) `);
      if (o.kind === "TiltSeries") li.appendChild(el("a", "view", { href: `/runs/${r.id}/view/${o.name}` }));
      if (o.kind === "Tomogram") li.appendChild(el("a", "view", { href: `/runs/${r.id}/tomogram/${o.name}` }));
      if (o.kind === "CTFSeries") li.appendChild(el("a", "view", { href: `/runs/${r.id}/ctf/${o.name}` }));
      if (o.kind === "Volume") li.appendChild(el("a", "view", { href: `/runs/${r.id}/map/${o.name}` }));
      return li;
    }));
    document.getElementById("error-box").hidden = !r.error;
    document.getElementById("error").textContent = r.error || "";
    document.getElementById("traceback").textContent = r.traceback || "";
    const images = r.images.join("\n");
    if (images !== shownImages) {
      shownImages = images;
      document.getElementById("images").replaceChildren(...r.images.map(p => {
        const a = el("a", undefined, { href: `/files/${encodeURI(p)}` }); a.appendChild(el("img", undefined, { src: `/files/${encodeURI(p)}`, alt: p, title: p })); return a;
      }));
    }
    const plots = r.plots.join("\n");
    if (plots !== shownPlots) {
      shownPlots = plots;
      drawPlotFiles(document.getElementById("plots"), r.plots);
    }
    const log = document.getElementById("log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = r.log;
    if (atEnd) log.scrollTop = log.scrollHeight;
  };
  const poll = async () => {
    try { render(await api(`/api/runs/${runId}`)); } catch (e) { message.textContent = e.message; }
    setTimeout(poll, POLL_MS);
  };
  document.getElementById("actions").addEventListener("click", async (event) => {
    const action = event.target.dataset.action;
    if (!action) return;
    if (action === "delete" && !confirm(`delete run ${runId} and its folder?`)) return;
    const body = action === "label" ? { label: document.getElementById("new-label").value } : {};
    try {
      const out = await api(`/api/runs/${runId}/${action}`, { body });
      message.textContent = "";
      if (action === "delete") { window.location = "/"; return; }
      if (action === "duplicate") { window.location = `/runs/${out.run}`; return; }
    } catch (e) { message.textContent = e.message; }
  });
  poll();
}

// --- new-run form -----------------------------------------------------------------------------
function fieldType(prop) {
  const options = prop.anyOf ? prop.anyOf.filter(o => o.type !== "null") : [prop];
  return { ...prop, ...(options[0] || {}), nullable: !!prop.anyOf && prop.anyOf.some(o => o.type === "null") };
}

function buildField(name, prop, required) {
  const f = fieldType(prop);
  const label = el("label", `${name}${f.unit ? ` (${f.unit})` : ""} `, { "data-field": name });
  let input;
  if (f.enum) {
    input = el("select");
    for (const v of f.enum) input.appendChild(el("option", v, { value: v }));
    if (f.default !== undefined) input.value = f.default;
  } else if (f.type === "boolean") {
    input = el("input", undefined, { type: "checkbox" });
    input.checked = !!f.default;
  } else {
    input = el("input", undefined, { type: "text" });
    if (f.default !== undefined && f.default !== null) input.value = Array.isArray(f.default) ? f.default.join(", ") : String(f.default);
    const range = [];
    for (const [k, s] of [["minimum", "≥"], ["exclusiveMinimum", ">"], ["maximum", "≤"], ["exclusiveMaximum", "<"]]) if (f[k] !== undefined) range.push(`${s} ${f[k]}`);
    if (range.length) input.placeholder = range.join(", ");
  }
  input.name = name;
  input.dataset.kind = f.type === "array" ? `array:${(f.items && f.items.type) || "string"}` : (f.type || "string");
  if (required) input.required = true;
  label.appendChild(input);
  label.appendChild(el("span", f.description || "", { class: "help" }));
  label.appendChild(el("span", "", { class: "field-error", "data-error-for": name }));
  return label;
}

function readValue(input) {
  const kind = input.dataset.kind;
  if (kind === "boolean") return input.checked;
  const text = input.value.trim();
  if (text === "") return undefined;
  const convert = (t, k) => ((k === "number" || k === "integer") && t !== "" && !isNaN(Number(t)) ? Number(t) : t);
  if (kind.startsWith("array:")) return text.split(",").map(t => convert(t.trim(), kind.slice(6)));
  return convert(text, kind);
}

async function newPage() {
  const search = document.getElementById("protocol-search");
  const form = document.getElementById("new-run");
  let current = null;
  const load = async () => {
    const name = search.value.trim();
    if (!name) return;
    try { current = await api(`/api/protocols/${encodeURIComponent(name)}`); } catch (e) { document.getElementById("summary").textContent = e.message; form.hidden = true; return; }
    document.getElementById("summary").textContent = current.summary;
    const inputs = document.getElementById("inputs");
    inputs.replaceChildren(el("legend", "inputs"), ...current.inputs.map(i => {
      const label = el("label", `${i.name} (${i.accepts}${i.optional ? ", optional" : ""}) `, { "data-input": i.name });
      const select = el("select", undefined, { name: `input:${i.name}` });
      if (i.optional || !i.choices.length) select.appendChild(el("option", "(none)", { value: "" }));
      for (const c of i.choices) select.appendChild(el("option", `${c.value} (${c.protocol}${c.label ? ": " + c.label : ""}, ${c.state})`, { value: c.value }));
      const filter = el("input", undefined, { name: `filter:${i.name}`, placeholder: i.default_filter || "filter, e.g. not excluded" });
      label.append(select, filter, el("span", i.help, { class: "help" }), el("span", "", { class: "field-error", "data-error-for": `input:${i.name}` }));
      return label;
    }));
    const params = document.getElementById("params");
    const required = new Set(current.schema.required || []);
    params.replaceChildren(el("legend", "parameters"), ...Object.entries(current.schema.properties || {}).map(([n, p]) => buildField(n, p, required.has(n))));
    form.hidden = false;
  };
  search.addEventListener("change", load);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const start = (event.submitter && event.submitter.dataset.start) || "save";
    form.querySelectorAll(".field-error").forEach(e => { e.textContent = ""; });
    const params = {};
    form.querySelectorAll("#params [name]").forEach(input => { const v = readValue(input); if (v !== undefined) params[input.name] = v; });
    const inputs = {};
    for (const i of current.inputs) {
      const value = form.elements[`input:${i.name}`].value;
      const filter = form.elements[`filter:${i.name}`].value.trim();
      if (value) inputs[i.name] = filter ? `${value}[${filter}]` : value;
    }
    try {
      const out = await api("/api/runs", { body: { protocol: current.name, params, inputs, start,
        label: document.getElementById("run-label").value, comment: document.getElementById("run-comment").value } });
      window.location = `/runs/${out.run}`;
    } catch (e) {
      const fields = (e.data && e.data.fields) || { "": e.message };
      for (const [name, text] of Object.entries(fields)) {
        const box = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`) || form.querySelector('[data-error-for=""]');
        box.textContent = text;
      }
    }
  });
  if (search.value) load();
}

const PAGES = { project: projectPage, run: runPage, new: newPage };  // static/viewers.js adds the viewers
document.addEventListener("DOMContentLoaded", () => { const page = PAGES[document.body.dataset.page]; if (page) page(); });
