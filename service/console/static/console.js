// The tfship console: plain DOM, no framework, no build step. Every piece of text from the
// server is written with textContent (the h() helper never parses markup), and the page's
// Content-Security-Policy allows no inline script: a model or class name is always text.
"use strict";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const main = document.getElementById("main");
let timer = null; // the current page's poller
let pageToken = 0; // bumped on every navigation: a late answer for an old page is dropped

// --- small helpers ---

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(digits);
  return String(value);
}

function table(headers, rows, caption) {
  return h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell, i) =>
      i === 0 ? h("th", { scope: "row" }, cell) : h("td", {}, cell))))));
}

function section(title, ...content) {
  return h("section", {}, h("h2", {}, title), ...content);
}

function show(...content) {
  main.replaceChildren(...content.flat().filter((x) => x !== null && x !== undefined && x !== false));
}

// --- the API, with the key the user gave (kept for this tab only) ---

function key() {
  return sessionStorage.getItem("tfship-api-key") || "";
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (key()) headers.Authorization = `Bearer ${key()}`;
  const answer = await fetch(path, { ...options, headers });
  if (answer.status === 401) throw new Unauthorized("an API key is needed");
  const body = await answer.json().catch(() => ({ error: `HTTP ${answer.status}` }));
  if (!answer.ok) throw new Error(body.error || `HTTP ${answer.status}`);
  return body;
}

const keyForm = document.getElementById("key-form");
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("tfship-api-key", document.getElementById("api-key").value.trim());
  keyForm.hidden = true;
  route();
});

function failed(error) {
  stopPolling();
  if (error instanceof Unauthorized) {
    keyForm.hidden = false;
    show(h("p", { class: "error", role: "alert" },
      key() ? "This API key is not accepted here." : "This server has API keys on: enter one above."));
    document.getElementById("api-key").focus();
    return;
  }
  show(h("p", { class: "error", role: "alert" }, error.message));
}

function stopPolling() {
  if (timer) clearInterval(timer);
  timer = null;
}

function poll(load) {
  // Runs now, then every POLL_MS while the page is shown; re-renders only on change, so
  // keyboard focus and scrolling survive the updates.
  let last = "";
  const token = pageToken;
  const tick = async () => {
    try {
      const [text, render] = await load();
      if (token !== pageToken || text === last) return;
      last = text;
      render();
    } catch (error) {
      if (token === pageToken) failed(error);
    }
  };
  tick();
  timer = setInterval(tick, POLL_MS);
}

// --- Models ---

function badge(state) {
  return h("span", { class: `badge state-${state.toLowerCase()}` }, state);
}

function modelsPage() {
  poll(async () => {
    const body = await api("api/models");
    return [JSON.stringify(body), () => renderModels(body)];
  });
}

function renderModels(body) {
    const models = body.models.map((model) => {
      const rows = model.versions.map((v) => [
        v.state === "AVAILABLE" ? h("a", { href: `#/models/${encodeURIComponent(model.name)}/${v.version}` }, `v${v.version}`) : `v${v.version}`,
        badge(v.state),
        v.runtime || "–",
        v.metric && v.metric.name ? `${v.metric.name} ${fmt(v.metric.value)}` : "–",
        (v.variants || []).join(", ") || "–",
        v.error ? h("span", { class: "error" }, `${v.error.code}: ${v.error.message}`) : "",
      ]);
      const labels = Object.entries(model.labels || {}).map(([label, version]) => `${label} → v${version}`);
      return h("article", { class: "model" },
        h("h2", {}, model.name),
        h("p", { class: "muted" },
          model.serving ? `serving v${model.serving}` : "no version serving",
          model.variant ? ` (variant ${model.variant})` : "",
          labels.length ? ` · labels: ${labels.join(", ")}` : "",
          model.serving ? " · " : "",
          model.serving ? h("a", { href: `#/try/${encodeURIComponent(model.name)}` }, "Try it") : null),
        rows.length ? table(["version", "state", "runtime", "gated test metric", "variants", "error"], rows)
          : h("p", { class: "muted" }, "no version yet"));
    });
    show(h("h1", {}, "Models"),
      models.length ? models : h("p", { class: "muted" }, "No model is published in this repository."),
      h("p", { class: "muted small" }, `Updated every ${POLL_MS / 1000} s.`));
}

// --- A model version ---

function curves(history, bestEpoch, names, title) {
  const series = names.filter((n) => Array.isArray(history[n]) && history[n].length);
  if (!series.length) return null;
  const width = 520, height = 220, pad = 36;
  const values = series.flatMap((n) => history[n]).filter(Number.isFinite);
  const low = Math.min(...values), high = Math.max(...values);
  const epochs = Math.max(...series.map((n) => history[n].length));
  const x = (i) => pad + (i / Math.max(1, epochs - 1)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - low) / (high - low || 1)) * (height - 2 * pad);
  const lines = series.map((n, k) => s("polyline", {
    class: `line line-${k}`, fill: "none",
    points: history[n].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
  }));
  const best = bestEpoch ? s("line", { class: "best", x1: x(bestEpoch - 1), x2: x(bestEpoch - 1), y1: pad / 2, y2: height - pad }) : null;
  return h("figure", {},
    s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${series.join(", ")} per epoch` },
      s("line", { class: "axis", x1: pad, x2: width - pad, y1: height - pad, y2: height - pad }),
      s("text", { x: pad, y: height - 8 }, "epoch 1"),
      s("text", { x: width - pad, y: height - 8, "text-anchor": "end" }, `epoch ${epochs}`),
      s("text", { x: 4, y: pad - 8 }, fmt(high, 3)),
      s("text", { x: 4, y: height - pad }, fmt(low, 3)),
      best, lines),
    h("figcaption", {}, series.map((n, k) => h("span", { class: `key key-${k}` }, n)),
      bestEpoch ? h("span", { class: "key key-best" }, `best epoch ${bestEpoch} (weights kept)`) : null));
}

function confusion(evaluation, classes) {
  const matrix = evaluation && evaluation.confusion_matrix;
  if (!Array.isArray(matrix)) return null;
  const names = classes.length ? classes : matrix.map((_, i) => String(i));
  const rows = matrix.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return h("tr", {}, h("th", { scope: "row" }, names[i]), row.map((count, j) => {
      const cell = h("td", { class: i === j ? "hit" : count ? "miss" : "" }, String(count));
      cell.style.setProperty("--share", (count / total).toFixed(3)); // CSSOM: allowed by the CSP
      return cell;
    }));
  });
  return h("table", { class: "confusion" },
    h("caption", {}, "Confusion matrix (rows: actual class, columns: predicted; colour: share of the row)"),
    h("thead", {}, h("tr", {}, h("th", {}, ""), names.map((n) => h("th", { scope: "col" }, n)))),
    h("tbody", {}, rows));
}

function versionPage(name, version) {
  const token = pageToken;
  api(`api/models/${encodeURIComponent(name)}/versions/${version}`).then((v) => {
    if (token !== pageToken) return;
    const sig = v.signature;
    const tensors = (list) => list.map((t) => [t.name, t.dtype, `[${t.shape.join(", ")}]`]);
    const metrics = Object.entries(v.metrics || {});
    const metricNames = [...new Set(metrics.flatMap(([, m]) => Object.keys(m)))];
    const perClass = Object.entries((v.evaluation && v.evaluation.per_class) || {});
    const t = v.training || {};
    const d = v.data || {};
    const gate = v.quality_gate || {};
    show(
      h("h1", {}, `${v.name} `, h("span", { class: "muted" }, `version ${v.version}`)),
      h("p", {}, badge("AVAILABLE"), ` ${v.runtime} runtime · ${v.verified ? "sha256 verified" : "unverified: no metadata.json"}`,
        v.created ? ` · published ${v.created}` : "", " · ",
        h("a", { href: `#/try/${encodeURIComponent(v.name)}` }, "Try it"), " · ",
        h("a", { href: `#/compare/${encodeURIComponent(v.name)}` }, "Compare versions")),
      section("Signature",
        table(["input", "dtype", "shape"], tensors(sig.inputs)),
        table(["output", "dtype", "shape"], tensors(sig.outputs)),
        v.class_names.length ? h("p", {}, `${v.task}: ${v.class_names.length} classes — `, v.class_names.join(", ")) : h("p", {}, v.task)),
      section("Training",
        table(["fact", "value"], [
          ["data", d.description || "–"],
          ["rows (train / val / test)", d.rows ? `${d.rows.train} / ${d.rows.val} / ${d.rows.test}` : "–"],
          ["seed", fmt(d.seed)],
          ["architecture", v.architecture ? Object.entries(v.architecture).map(([k, x]) => `${k}: ${JSON.stringify(x)}`).join("; ") : "–"],
          ["epochs run (best)", t.epochs_run ? `${t.epochs_run} (${t.best_epoch})` : "–"],
          ["fit / whole run", t.fit_seconds ? `${fmt(t.fit_seconds, 1)} s / ${fmt(t.total_seconds, 1)} s` : "–"],
          ["run", t.run_id || "–"],
          ["diagnosis", v.fit_diagnosis ? `${v.fit_diagnosis.verdict}: ${v.fit_diagnosis.summary}` : "–"],
          ["quality gate", gate.message || "–"],
        ]),
        t.history ? curves(t.history, t.best_epoch, ["loss", "val_loss"], "Loss") : null,
        t.history ? curves(t.history, t.best_epoch, ["accuracy", "val_accuracy"], "Accuracy") : null),
      section("Evaluation",
        metrics.length ? table(["artifact", ...metricNames], metrics.map(([a, m]) => [a, ...metricNames.map((n) => fmt(m[n]))]), "Test split, per artifact") : h("p", { class: "muted" }, "no test metrics (an imported model)"),
        perClass.length ? table(["class", "precision", "recall", "f1", "support"], perClass.map(([c, m]) => [c, fmt(m.precision), fmt(m.recall), fmt(m.f1), fmt(m.support)]), "Per class") : null,
        confusion(v.evaluation, v.class_names)),
      section("Compression",
        Object.keys(v.compression || {}).length
          ? table(["variant", "file", "size", "of float", "metric", "float", "published"], Object.entries(v.compression).map(([k, c]) => [k, c.file, `${fmt(c.size_bytes)} B`, fmt(c.size_ratio, 3), fmt(c.value), fmt(c.float_value), c.published ? "yes" : "no"]))
          : h("p", { class: "muted" }, "no compressed variant")),
      section("Drift", h("div", { id: "drift" }, h("p", { class: "muted" }, "Loading…"))),
      section("Parity and checksums",
        v.parity ? h("p", {}, `ONNX against ${v.parity.reference}: largest difference ${fmt(v.parity.max_abs_diff, 9)} on ${v.parity.rows} rows (tolerance ${v.parity.tolerance})`) : null,
        table(["artifact", "file", "sha256"], Object.entries(v.checksums || {}).flatMap(([a, files]) => Object.entries(files).map(([f, sum]) => [a, f, h("code", {}, sum)])))),
    );
    showDrift(v.name, v.version, token);
  }).catch((error) => { if (token === pageToken) failed(error); });
}

function showDrift(name, version, token) {
  api("/monitoring/drift").then((report) => {
    const place = document.getElementById("drift");
    if (token !== pageToken || !place) return;
    const entry = report.versions.find((x) => x.model === name && x.version === version);
    if (!entry) { place.replaceChildren(h("p", { class: "muted" }, "No drift scores: drift is off, or this version has no baseline profile.")); return; }
    const flag = (score) => (score > report.threshold ? "major shift" : score > 0.1 ? "moderate" : "");
    const rows = Object.entries(entry.inputs).flatMap(([input, described]) => described.features.map((f) => [
      input, f.feature, fmt(f.score, 3), flag(f.score),
      f.unseen_share ? `${(f.unseen_share * 100).toFixed(1)} %` : "–", f.missing_share ? `${(f.missing_share * 100).toFixed(1)} %` : "–"]));
    place.replaceChildren(
      h("p", {}, `Population stability index of the latest ${entry.window_rows} rows (window ${report.window}) against the training baseline; above ${report.threshold} is a major shift.`,
        entry.predictions === null ? "" : ` Predictions: ${fmt(entry.predictions, 3)} ${flag(entry.predictions)}.`),
      entry.window_rows ? table(["input", "feature", "PSI", "shift", "unseen", "missing"], rows) : h("p", { class: "muted" }, "No requests yet."));
  }).catch(() => {
    const place = document.getElementById("drift");
    if (place) place.replaceChildren(h("p", { class: "muted" }, "Drift scores are not available to this key."));
  });
}

// --- Try it ---

const V2_TYPES = { float32: "FP32", float64: "FP64", float16: "FP16", int64: "INT64", int32: "INT32", int16: "INT16", int8: "INT8", uint8: "UINT8", bool: "BOOL", object: "BYTES" };

function drawingPad(input, range) {
  const [, rows, cols] = input.shape;
  const canvas = h("canvas", { width: 280, height: 280, class: "pad", "aria-label": `Draw on ${input.name} (${rows}×${cols}); the drawing is scaled down before it is sent` });
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, 280, 280); };
  clear();
  let drawing = false;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (280 / box.width), (event.clientY - box.top) * (280 / box.height)];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true; canvas.setPointerCapture(event.pointerId);
    ctx.beginPath(); ctx.moveTo(...at(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    ctx.lineWidth = 28; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#fff";
    ctx.lineTo(...at(event)); ctx.stroke();
  });
  canvas.addEventListener("pointerup", () => { drawing = false; });
  const [low, high] = range || [0, 255];
  return {
    element: h("div", {}, canvas, h("p", {}, h("button", { type: "button", onclick: clear }, "Clear"),
      h("span", { class: "muted" }, ` sent as ${rows}×${cols} values from ${low} to ${high}, the inkiest block at ${high}`))),
    value() {
      // Each value is the mean ink of its block of the pad (a browser's own downscaling
      // samples a few pixels, not the block), stretched so the inkiest block is the range's
      // top, as the training images' strokes are.
      const pixels = ctx.getImageData(0, 0, 280, 280).data;
      const means = [];
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const [y0, y1] = [Math.floor((r * 280) / rows), Math.floor(((r + 1) * 280) / rows)];
          const [x0, x1] = [Math.floor((c * 280) / cols), Math.floor(((c + 1) * 280) / cols)];
          let sum = 0;
          for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += pixels[(y * 280 + x) * 4];
          means.push(sum / ((y1 - y0) * (x1 - x0) * 255));
        }
      }
      const top = Math.max(...means) || 1;
      const image = [];
      for (let r = 0; r < rows; r++) {
        const line = [];
        for (let c = 0; c < cols; c++) line.push([Math.round((low + (means[r * cols + c] / top) * (high - low)) * 100) / 100]);
        image.push(line);
      }
      return image;
    },
  };
}

function fieldFor(input, vocabulary) {
  const id = `field-${input.name}`;
  const control = vocabulary
    ? h("select", { id }, vocabulary.map((value) => h("option", { value }, value)))
    : h("input", { id, type: input.dtype === "object" ? "text" : "number", step: "any", value: "0", required: true });
  return {
    element: h("p", { class: "field" }, h("label", { for: id }, input.name, h("span", { class: "muted" }, ` ${input.dtype}`)), control),
    value: () => (input.dtype === "object" ? control.value : Number(control.value)),
  };
}

function zeros(shape) {
  if (!shape.length) return 0;
  const size = shape[0] < 0 ? 1 : shape[0];
  return Array.from({ length: size }, () => zeros(shape.slice(1)));
}

function shapeOf(value) {
  return Array.isArray(value) ? [value.length, ...(value.length ? shapeOf(value[0]) : [])] : [];
}

function builderFor(v) {
  const inputs = v.signature.inputs;
  const image = inputs.length === 1 && inputs[0].shape.length === 4 && inputs[0].shape[3] === 1 && inputs[0].shape[1] > 0;
  if (image) {
    const pad = drawingPad(inputs[0], (v.value_ranges || {})[inputs[0].name]);
    return { element: pad.element, row: () => ({ [inputs[0].name]: pad.value() }) };
  }
  const tabular = inputs.every((t) => t.shape.length === 1 || (t.shape.length === 2 && t.shape[1] === 1));
  if (tabular) {
    const fields = inputs.map((t) => [t, fieldFor(t, (v.vocabularies || {})[t.name])]);
    return {
      element: h("div", {}, fields.map(([, f]) => f.element)),
      row: () => Object.fromEntries(fields.map(([t, f]) => [t.name, t.shape.length === 2 ? [f.value()] : f.value()])),
    };
  }
  const template = Object.fromEntries(inputs.map((t) => [t.name, zeros(t.shape.slice(1))]));
  const editor = h("textarea", { id: "json-row", rows: 10, cols: 60, spellcheck: "false" }, JSON.stringify(template));
  return {
    element: h("p", {}, h("label", { for: "json-row" }, "One row, by input name (JSON)"), editor),
    row: () => JSON.parse(editor.value),
  };
}

function inferBody(v, row) {
  return {
    inputs: v.signature.inputs.map((t) => {
      const value = row[t.name];
      return { name: t.name, shape: [1, ...shapeOf(value)], datatype: V2_TYPES[t.dtype] || "FP32", data: [value].flat(Infinity) };
    }),
  };
}

function bars(classes, scores) {
  const best = scores.map((score, i) => [classes[i] ?? String(i), score]).sort((a, b) => b[1] - a[1]).slice(0, 5);
  const width = 420, row = 26;
  return s("svg", { viewBox: `0 0 ${width} ${row * best.length}`, role: "img", "aria-label": "The 5 best classes and their scores", class: "bars" },
    best.map(([name, score], i) => s("g", {},
      s("text", { x: 0, y: i * row + 17 }, name),
      s("rect", { x: 90, y: i * row + 4, width: Math.max(1, score * (width - 170)), height: row - 8, class: i === 0 ? "top" : "" }),
      s("text", { x: width - 4, y: i * row + 17, "text-anchor": "end" }, score.toFixed(4)))));
}

function curlFor(path, body) {
  const quoted = JSON.stringify(body).replaceAll("'", "'\\''");
  const auth = key() ? " -H 'Authorization: Bearer $TFSHIP_API_KEY'" : "";
  return `curl -s -X POST '${location.origin}${path}' -H 'Content-Type: application/json'${auth} -d '${quoted}'`;
}

function tryPage(name) {
  const token = pageToken;
  api("api/models").then(async (listing) => {
    const model = listing.models.find((m) => m.name === name);
    if (!model || !model.serving) throw new Error(`model '${name}' has no version serving`);
    const v = await api(`api/models/${encodeURIComponent(name)}/versions/${model.serving}`);
    if (token !== pageToken) return;
    const builder = builderFor(v);
    const answer = h("div", { id: "answer", "aria-live": "polite" });
    const form = h("form", { class: "try" }, builder.element, h("p", {}, h("button", { type: "submit" }, "Predict")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let body;
      try { body = inferBody(v, builder.row()); } catch (error) { answer.replaceChildren(h("p", { class: "error", role: "alert" }, `Not a valid row: ${error.message}`)); return; }
      const path = `/v2/models/${encodeURIComponent(name)}/infer`;
      const started = performance.now();
      try {
        const result = await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        const ms = performance.now() - started;
        const first = result.outputs[0];
        const classes = v.class_names;
        const scores = first.data;
        const classify = v.task === "classification" && scores.length === (classes.length || scores.length);
        const best = classify ? scores.indexOf(Math.max(...scores)) : -1;
        answer.replaceChildren(
          classify ? h("p", { class: "predicted" }, "Predicted class ", h("strong", { id: "predicted-class" }, classes[best] ?? String(best)), ` (score ${scores[best].toFixed(4)})`)
            : h("p", { class: "predicted" }, `${first.name}: `, h("strong", { id: "predicted-value" }, scores.map((x) => fmt(x)).join(", "))),
          classify ? bars(classes, scores) : null,
          h("p", { class: "muted", id: "answered-by" }, `answered by version ${result.model_version} in ${ms.toFixed(1)} ms (round trip from this browser)`),
          h("p", {}, h("label", { for: "curl" }, "The same request with curl"),
            h("textarea", { id: "curl", rows: 4, cols: 80, readonly: true, spellcheck: "false" }, curlFor(path, body)),
            h("button", { type: "button", onclick: () => navigator.clipboard && navigator.clipboard.writeText(curlFor(path, body)) }, "Copy")));
      } catch (error) {
        if (error instanceof Unauthorized) { failed(error); return; }
        answer.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
      }
    });
    show(h("h1", {}, `Try ${name} `, h("span", { class: "muted" }, `(serving v${model.serving})`)), form, answer);
  }).catch((error) => { if (token === pageToken) failed(error); });
}

// --- Live traffic, from the server's own /metrics ---

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const match = /^(tfship_requests_total|tfship_request_duration_seconds_bucket)\{(.*)\} (\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function quantile(buckets, q) {
  // buckets: [[le, increase]] cumulative, sorted; linear inside the bucket, as PromQL does.
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  let previousLe = 0, previousCount = 0;
  for (const [le, count] of buckets) {
    if (count >= q * total) {
      if (!Number.isFinite(le)) return previousLe;
      return previousLe + (le - previousLe) * ((q * total - previousCount) / ((count - previousCount) || 1));
    }
    previousLe = le; previousCount = count;
  }
  return previousLe;
}

function trafficPage() {
  const history = []; // [time, samples], the last 5 minutes
  poll(async () => {
    const headers = key() ? { Authorization: `Bearer ${key()}` } : {};
    const answer = await fetch("/metrics", { headers });
    if (answer.status === 401) throw new Unauthorized("an API key is needed");
    const now = Date.now() / 1000;
    history.push([now, parseMetrics(await answer.text())]);
    while (history.length > 2 && now - history[0][0] > 300) history.shift();
    const [then, old] = history[0];
    const seconds = now - then;
    const byKey = new Map();
    const sum = (samples, name, pick) => {
      const out = new Map();
      for (const x of samples) {
        if (x.name !== name || !x.labels.model || !pick(x)) continue;
        const k = `${x.labels.model}\u0000${x.labels.version}` + (name.endsWith("bucket") ? `\u0000${x.labels.le}` : "");
        out.set(k, (out.get(k) || 0) + x.value);
      }
      return out;
    };
    const inference = (x) => ["predict", "classify", "regress", "infer"].includes(x.labels.api);
    const nowCount = sum(history[history.length - 1][1], "tfship_requests_total", inference);
    const oldCount = sum(old, "tfship_requests_total", inference);
    const nowErrors = sum(history[history.length - 1][1], "tfship_requests_total", (x) => inference(x) && x.labels.status >= "500");
    const oldErrors = sum(old, "tfship_requests_total", (x) => inference(x) && x.labels.status >= "500");
    const nowBuckets = sum(history[history.length - 1][1], "tfship_request_duration_seconds_bucket", inference);
    const oldBuckets = sum(old, "tfship_request_duration_seconds_bucket", inference);
    for (const [k, value] of nowCount) byKey.set(k, { requests: value - (oldCount.get(k) || 0), errors: (nowErrors.get(k) || 0) - (oldErrors.get(k) || 0), buckets: [] });
    for (const [k, value] of nowBuckets) {
      const [model, version, le] = k.split("\u0000");
      const entry = byKey.get(`${model}\u0000${version}`);
      if (entry) entry.buckets.push([le === "+Inf" ? Infinity : Number(le), value - (oldBuckets.get(k) || 0)]);
    }
    const rows = [...byKey.entries()].sort().map(([k, e]) => {
      const [model, version] = k.split("\u0000");
      e.buckets.sort((a, b) => a[0] - b[0]);
      const p50 = quantile(e.buckets, 0.5), p99 = quantile(e.buckets, 0.99);
      return [model, `v${version}`, seconds > 0 ? (e.requests / seconds).toFixed(2) : "–", e.requests ? `${((e.errors / e.requests) * 100).toFixed(2)} %` : "–",
        p50 === null ? "–" : `${(p50 * 1000).toFixed(2)} ms`, p99 === null ? "–" : `${(p99 * 1000).toFixed(2)} ms`];
    });
    const render = () => show(h("h1", {}, "Live traffic"),
      h("p", { class: "muted" }, seconds > 0 ? `Inference requests over the last ${Math.round(seconds)} s (at most 5 minutes), from this server's /metrics, every ${POLL_MS / 1000} s.` : "Measuring…"),
      rows.length ? table(["model", "version", "requests/s", "5xx", "p50", "p99"], rows) : h("p", { class: "muted" }, "No inference request yet."));
    return [JSON.stringify(rows) + seconds.toFixed(0), render];
  });
}

// --- Compare two versions ---

function comparePage(name, first, second) {
  const token = pageToken;
  api("api/models").then(async (listing) => {
    const models = listing.models.filter((m) => m.versions.some((v) => v.state === "AVAILABLE"));
    const model = models.find((m) => m.name === name) || models[0];
    if (!model) throw new Error("no model has a version serving");
    const served = model.versions.filter((v) => v.state === "AVAILABLE").map((v) => v.version);
    const a = served.includes(Number(first)) ? Number(first) : served[served.length > 1 ? 1 : 0];
    const b = served.includes(Number(second)) ? Number(second) : served[0];
    const [va, vb] = await Promise.all([a, b].map((x) => api(`api/models/${encodeURIComponent(model.name)}/versions/${x}`)));
    if (token !== pageToken) return;
    const go = () => { location.hash = `#/compare/${encodeURIComponent(pickModel.value)}/${pickA.value}/${pickB.value}`; };
    const pickModel = h("select", { id: "cmp-model", onchange: () => { location.hash = `#/compare/${encodeURIComponent(pickModel.value)}`; } }, models.map((m) => h("option", { value: m.name, selected: m.name === model.name }, m.name)));
    const pickA = h("select", { id: "cmp-a", onchange: go }, served.map((x) => h("option", { value: x, selected: x === a }, `v${x}`)));
    const pickB = h("select", { id: "cmp-b", onchange: go }, served.map((x) => h("option", { value: x, selected: x === b }, `v${x}`)));
    const artifact = (v) => (v.metrics && (v.metrics.onnx || Object.values(v.metrics)[0])) || {};
    const ma = artifact(va), mb = artifact(vb);
    const names = [...new Set([...Object.keys(ma), ...Object.keys(mb)])];
    const delta = (x, y) => (typeof x === "number" && typeof y === "number" ? (y - x >= 0 ? "+" : "") + (y - x).toFixed(4) : "–");
    const pa = (va.evaluation && va.evaluation.per_class) || {}, pb = (vb.evaluation && vb.evaluation.per_class) || {};
    const classes = [...new Set([...Object.keys(pa), ...Object.keys(pb)])];
    show(h("h1", {}, "Compare versions"),
      h("p", { class: "pickers" }, h("label", { for: "cmp-model" }, "model "), pickModel, h("label", { for: "cmp-a" }, " version "), pickA, h("label", { for: "cmp-b" }, " against "), pickB),
      section("Test metrics (ONNX)", table(["metric", `v${a}`, `v${b}`, "change"], names.map((n) => [n, fmt(ma[n]), fmt(mb[n]), delta(ma[n], mb[n])]))),
      classes.length ? section("Per class (f1)", table(["class", `v${a}`, `v${b}`, "change"], classes.map((c) => [c, fmt(pa[c] && pa[c].f1), fmt(pb[c] && pb[c].f1), delta(pa[c] && pa[c].f1, pb[c] && pb[c].f1)]))) : null,
      h("div", { class: "side-by-side" }, confusion(va.evaluation, va.class_names), confusion(vb.evaluation, vb.class_names)));
  }).catch((error) => { if (token === pageToken) failed(error); });
}

// --- routing ---

function route() {
  stopPolling();
  pageToken += 1;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = parts[0] || "models";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (page === "models" && parts[1]) versionPage(parts[1], Number(parts[2]));
  else if (page === "try") tryPage(parts[1]);
  else if (page === "traffic") trafficPage();
  else if (page === "compare") comparePage(parts[1], parts[2], parts[3]);
  else modelsPage();
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
route();
