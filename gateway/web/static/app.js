// Sen's built-in page: the device table and, per device, a uPlot chart of the chosen metric with one
// line per sensor (readings without a sensor: one line named for the device), refreshed every 5 s.
// The server puts a null where a line has an outage, so uPlot breaks the line there.
// Every string it shows comes from i18n.js (t); numbers and dates are formatted for the language
// (Intl, the table's locale). The language: the one chosen with the EN/VI switch (kept in
// localStorage), else the one the server picked from the browser's Accept-Language (<html lang>).
"use strict";
// Line colours, by sensor name across the page (the screenshot test reads this list).
const PALETTE = ["#e4572e", "#2e86de", "#1b998b", "#8e44ad", "#f0a202", "#d81b60", "#6a994e", "#795548"];
const REFRESH_MS = 5000;
const CHART_HEIGHT = 200;
const $ = (sel) => document.querySelector(sel);
const LANG_KEY = "sen.lang";
const state = { metric: "", units: new Map(), colours: new Map(), charts: new Map(), busy: false, again: false,
                lang: "en", fmt: null };

// The text of `key` in the page's language, {name} placeholders filled in; English when missing.
function t(key, vars = {}) {
  const text = I18N[state.lang]?.[key] ?? I18N.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}
function storedLang() {
  try { return localStorage.getItem(LANG_KEY); } catch { return null; }  // storage may be off
}
function chooseLang() {
  for (const lang of [storedLang(), document.documentElement.lang]) if (lang && lang in I18N) return lang;
  return "en";
}
// Number and date formats of the language (Intl).
function formats(locale) {
  const time = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  return {
    int: new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }),
    plain: new Intl.NumberFormat(locale, { maximumFractionDigits: 0, useGrouping: false }),
    dec: new Intl.NumberFormat(locale, { maximumFractionDigits: 2 }),
    fixed: [0, 1, 2, 3, 4, 5, 6].map((d) => new Intl.NumberFormat(locale, { minimumFractionDigits: d,
                                                                           maximumFractionDigits: d })),
    clock: new Intl.DateTimeFormat(locale, { ...time, second: "2-digit" }),
    hm: new Intl.DateTimeFormat(locale, time),
    day: new Intl.DateTimeFormat(locale, { day: "2-digit", month: "2-digit", year: "numeric" }),  // vi: 22/11/2026
    stamp: new Intl.DateTimeFormat(locale, { day: "2-digit", month: "2-digit", year: "numeric", ...time,
                                             second: "2-digit" }),
  };
}
// The page's fixed strings (index.html's data-i18n) in the chosen language.
function applyLang(lang) {
  state.lang = lang;
  state.fmt = formats(t("locale"));
  document.documentElement.lang = lang;
  document.title = t("page.title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
  for (const opt of $("#minutes").options) opt.textContent = windowText(Number(opt.value));
  for (const button of document.querySelectorAll("#lang button")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
    button.title = I18N[button.dataset.lang]["lang.name"];
  }
  $("#metric").replaceChildren();  // option texts: the next refresh writes them in this language
}
function switchLang(lang) {
  try { localStorage.setItem(LANG_KEY, lang); } catch { /* not kept: the choice lasts this visit */ }
  applyLang(lang);
  for (const entry of state.charts.values()) entry.u?.destroy();  // their ticks and legends, re-made
  state.charts.clear();
  refresh();
}

function metricLabel(metric) { return I18N[state.lang]?.[`metric.${metric}`] ?? I18N.en[`metric.${metric}`] ?? ""; }
function metricText(metric, unit) {  // "temperature — temp_c (°C)"; an unknown metric: its name
  const label = metricLabel(metric);
  return `${label ? label + " — " : ""}${metric}${unit ? " (" + unit + ")" : ""}`;
}

function ago(ms) {
  if (ms == null) return "-";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  const n = (v) => state.fmt.int.format(v);
  return s < 120 ? t("ago.s", { n: n(s) }) : s < 7200 ? t("ago.min", { n: n(Math.round(s / 60)) })
    : t("ago.h", { n: n(Math.round(s / 3600)) });
}
function num(v, how = "int") { return v == null ? null : state.fmt[how].format(v); }
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text == null ? "-" : String(text);
  if (cls) td.className = cls;
  return td;
}
// The application version, and an update under way: "1.4.0 → 1.5.0: receiving 28%".
function version(d) {
  const o = d.ota;
  if (!o || o.st === "done") return d.ver;
  const pct = o.st === "recv" && o.of ? ` ${Math.floor((100 * (o.at ?? 0)) / o.of)}%` : "";
  const st = `ota.${o.st}` in I18N.en ? t(`ota.${o.st}`) : o.st;
  return `${d.ver ?? "?"} → ${o.ver ?? "?"}: ${st}${pct}${o.why ? ` (${o.why})` : ""}`;
}
function gaps(d) {
  if (!d.gaps) return null;
  if (!d.gaps.length) return t("gaps.none");
  return d.gaps.map(([lo, hi]) => (lo === hi ? num(lo, "plain") : `${num(lo, "plain")}-${num(hi, "plain")}`)).join("; ");
}
// A value with its unit, at most 2 decimals, in the language's format: 21.5 °C (vi: 21,5 °C), 55 %.
function withUnit(v, unit) {
  if (v == null) return "–";
  const text = num(v, "dec");
  return unit ? `${text} ${unit}` : text;
}
function colourOf(sensor) { return state.colours.get(sensor ?? "") ?? PALETTE[0]; }
function assignColours(keys) {  // sorted, so a sensor keeps its colour on every chart
  const sorted = [...new Set(keys)].sort();
  if (sorted.join("\n") === [...state.colours.keys()].join("\n")) return;
  state.colours = new Map(sorted.map((k, i) => [k, PALETTE[i % PALETTE.length]]));
}

function sensorsCell(td, d) {
  const unit = state.units.get(state.metric) ?? "";
  for (const s of d.sensors ?? []) {
    const span = document.createElement("span");
    span.className = "sensor";
    const dot = document.createElement("b");
    dot.textContent = "●";
    dot.style.color = colourOf(s.sensor);
    const value = s.values?.[state.metric];
    span.append(dot, ` ${s.label}${value == null ? "" : " " + withUnit(value, unit)}`);
    span.title = `${s.sensor == null ? t("sensor.untagged") : s.sensor}, ${t("sensor.last", { ago: ago(s.last_ms) })}\n`
      + Object.entries(s.values ?? {}).map(([m, v]) => `${m} ${withUnit(v, state.units.get(m) ?? "")}`).join(", ");
    td.append(span);
  }
  if (!td.childNodes.length) td.textContent = "-";
}

function renderTable(devices) {
  const body = $("#devices tbody");
  body.replaceChildren();
  for (const d of devices) {
    const row = body.insertRow();
    cell(row, d.site); cell(row, d.device); cell(row, d.board);
    sensorsCell(cell(row, "", "sensors"), d);
    cell(row, d.state == null ? null : (`state.${d.state}` in I18N.en ? t(`state.${d.state}`) : d.state), d.state);
    cell(row, version(d)); cell(row, ago(d.last_reading_ms ?? d.last_seen_ms));
    cell(row, num(d.seq ?? d.highest_seq, "plain"), "num"); cell(row, num(d.rssi_dbm), "num");
    cell(row, num(d.heap_free), "num"); cell(row, num(d.outbox), "num"); cell(row, num(d.dropped), "num");
    cell(row, gaps(d));
  }
}

// Axis width from its longest tick label (uPlot's axis-autosize recipe).
function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values ?? []).reduce((a, v) => (String(v).length > a.length ? String(v) : a), "");
  if (longest) {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size) + 4;
}
// Tick labels with the unit and as many decimals as the tick step needs.
function valueTicks(unit) {
  return (u, splits) => {
    const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
    let dec = 0;
    while (dec < 6 && Math.abs(Math.round(step * 10 ** dec) - step * 10 ** dec) > 1e-6) dec++;
    return splits.map((v) => (v == null ? "" : `${state.fmt.fixed[dec].format(v)}${unit ? " " + unit : ""}`));
  };
}
// Time ticks: 24-hour clock; the date (in the language's order: vi 22/11/2026) under the first tick
// and where the day changes.
function timeTicks(u, splits) {
  let day = null;
  return splits.map((ms) => {
    if (ms == null) return "";
    const when = new Date(ms);
    const today = state.fmt.day.format(when);
    const text = state.fmt.hm.format(when) + (today !== day ? "\n" + today : "");
    day = today;
    return text;
  });
}

// The value axis: 10 % around the data; a flat line gets a narrow band around it, not 0 to 2000.
function valueRange(u, min, max) {
  if (min == null || max == null) return [0, 1];
  if (min === max) {
    const d = Math.max(Math.abs(min) * 0.005, 0.5);
    return [min - d, max + d];
  }
  return uPlot.rangeNum(min, max, 0.1, true);
}
function windowText(minutes) {
  return minutes >= 60 && minutes % 60 === 0 ? t("window.h", { n: num(minutes / 60) }) : t("window.min", { n: num(minutes) });
}

// uPlot's aligned data: one x array (ms), one y array per line; a line's own nulls stay gaps.
function aligned(lines) {
  const tables = lines.map((l) => [l.points.map((p) => p[0]), l.points.map((p) => p[1])]);
  return uPlot.join(tables, tables.map(() => [null, 2]));  // 2: expand a null gap over alignment holes
}

// The series' index nearest the cursor that has a value: lines are sampled at their own times, so
// at another line's time a line has a hole; an outage's null is not looked across.
function nearestIdx(u, sidx, idx) {
  const ys = u.data[sidx];
  if (sidx === 0 || idx == null || ys[idx] !== undefined) return idx;  // a value, or inside a gap
  const xs = u.data[0];
  let lo = idx - 1, hi = idx + 1;
  while (lo >= 0 && ys[lo] === undefined) lo--;
  while (hi < ys.length && ys[hi] === undefined) hi++;
  const left = lo >= 0 && ys[lo] !== null ? lo : null;
  const right = hi < ys.length && ys[hi] !== null ? hi : null;
  if (left == null || right == null) return left ?? right ?? idx;
  return xs[idx] - xs[left] <= xs[right] - xs[idx] ? left : right;
}
function lastValue(ys) {
  for (let i = ys.length - 1; i >= 0; i--) if (ys[i] != null) return ys[i];
  return null;
}

function makeChart(fig, lines, unit, range) {
  const opts = {
    width: Math.max(300, fig.clientWidth - 16), height: CHART_HEIGHT, ms: 1,
    cursor: { sync: { key: "sen" }, points: { size: 7 }, dataIdx: nearestIdx },
    legend: { live: true },
    scales: { x: { time: true, range: () => [range.from, range.to] }, y: { range: valueRange } },
    axes: [
      { stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ccc" }, values: timeTicks },
      { stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ccc" }, values: valueTicks(unit), size: axisSize },
    ],
    series: [
      // the legend reads the values under the cursor; without a cursor, each line's latest value
      { label: t("legend.time"), value: (u, v) => (v == null ? t("legend.latest") : state.fmt.stamp.format(new Date(v))) },
      ...lines.map((l) => ({ label: l.label, stroke: colourOf(l.sensor), width: 2, spanGaps: false,
                             value: (u, v, sidx, idx) => withUnit(idx == null ? lastValue(u.data[sidx]) : v, unit) })),
    ],
  };
  return new uPlot(opts, aligned(lines), fig.querySelector(".plot"));
}

// Where the plot area is on the page (CSS px): the screenshot test looks there.
function markPlot(fig, u) {
  const r = u.over.getBoundingClientRect();
  fig.dataset.plot = [r.left + scrollX, r.top + scrollY, r.width, r.height].map(Math.round).join(",");
}

function figureFor(d) {
  const key = `${d.site}/${d.device}`;
  let entry = state.charts.get(key);
  if (!entry) {
    const fig = document.createElement("figure");
    fig.dataset.device = key;
    fig.append(document.createElement("figcaption"), Object.assign(document.createElement("div"), { className: "plot" }));
    entry = { fig, u: null, sig: "", range: { from: 0, to: 1 } };
    state.charts.set(key, entry);
  }
  return entry;
}

function renderCharts(devices, answer) {
  const { metric, unit, minutes } = answer;
  const byDevice = new Map();
  for (const line of answer.lines) {
    const key = `${line.site}/${line.device}`;
    byDevice.set(key, [...(byDevice.get(key) ?? []), line]);
  }
  const entries = devices.map(figureFor);
  const keep = new Set(entries.map((e) => e.fig.dataset.device));
  for (const [key, entry] of state.charts) {
    if (!keep.has(key)) { entry.u?.destroy(); state.charts.delete(key); }
  }
  $("#charts").replaceChildren(...entries.map((e) => e.fig));  // in the page first: charts take its width
  for (const entry of entries) {
    const key = entry.fig.dataset.device;
    const lines = byDevice.get(key) ?? [];
    entry.range.from = answer.from_ms; entry.range.to = answer.to_ms;
    entry.fig.querySelector("figcaption").textContent = `${key} — ${metricText(metric, unit)}`;
    const sig = [state.lang, metric, unit, ...lines.map((l) => `${l.label}:${colourOf(l.sensor)}`)].join("|");
    if (entry.u && (sig !== entry.sig || !lines.length)) { entry.u.destroy(); entry.u = null; }
    const plot = entry.fig.querySelector(".plot");
    if (!lines.length) {
      plot.textContent = t("chart.empty", { metric: metricLabel(metric) || metric, window: windowText(minutes) });
      plot.className = "plot empty";
      delete entry.fig.dataset.plot;
    } else if (entry.u) {
      entry.u.setData(aligned(lines));
    } else {
      plot.replaceChildren(); plot.className = "plot";
      entry.u = makeChart(entry.fig, lines, unit, entry.range);
    }
    entry.sig = sig;
  }
  for (const entry of entries) if (entry.u) markPlot(entry.fig, entry.u);
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function refresh() {
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    const [devices, known] = await Promise.all([getJSON("/api/devices"), getJSON("/api/metrics")]);
    state.units = new Map(known.metrics.map((m) => [m.name, m.unit]));
    const names = known.metrics.map((m) => m.name);
    const select = $("#metric");
    if (names.join() !== [...select.options].map((o) => o.value).join()) {
      select.replaceChildren(...known.metrics.map((m) => new Option(metricText(m.name, m.unit), m.name)));
    }
    state.metric = names.includes(state.metric) ? state.metric : (names.includes("temp_c") ? "temp_c" : names[0] || "");
    select.value = state.metric;
    const answer = state.metric
      ? await getJSON(`/api/series?metric=${encodeURIComponent(state.metric)}&minutes=${encodeURIComponent($("#minutes").value)}`)
      : { metric: "", unit: "", minutes: 0, from_ms: 0, to_ms: 1, lines: [] };
    assignColours([...devices.flatMap((d) => (d.sensors ?? []).map((s) => s.sensor ?? "")),
                   ...answer.lines.map((l) => l.sensor ?? "")]);
    renderTable(devices);
    renderCharts(devices, answer);
    $("#status").textContent = t("status.updated", { n: num(devices.length), time: state.fmt.clock.format(new Date()) });
    $("#status").className = "";
  } catch (err) {
    $("#status").textContent = t("status.error", { message: err.message });
    $("#status").className = "error";
  } finally {
    state.busy = false;
    if (state.again) { state.again = false; refresh(); }
  }
}

function resize() {
  for (const entry of state.charts.values()) {
    if (!entry.u) continue;
    entry.u.setSize({ width: Math.max(300, entry.fig.clientWidth - 16), height: CHART_HEIGHT });
    markPlot(entry.fig, entry.u);
  }
}

applyLang(chooseLang());
for (const button of document.querySelectorAll("#lang button")) {
  button.addEventListener("click", () => switchLang(button.dataset.lang));
}
$("#metric").addEventListener("change", (e) => { state.metric = e.target.value; refresh(); });
$("#minutes").addEventListener("change", refresh);
window.addEventListener("resize", resize);
refresh();
setInterval(refresh, REFRESH_MS);
