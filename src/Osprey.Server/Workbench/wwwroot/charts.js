// Line charts on a canvas, several runs overlaid: no library, so the page works offline.
"use strict";
window.OspreyCharts = (() => {
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

  // Round axis ticks: 1, 2 or 5 times a power of ten.
  function ticks(min, max, count) {
    if (!(max > min)) { max = min + 1; }
    const raw = (max - min) / count, power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const list = [];
    for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) list.push(v);
    return list;
  }

  // Enough digits that neighbouring ticks (step apart) read differently.
  function label(v, step) {
    const a = Math.abs(v);
    const digits = Math.max(1, Math.min(6, Math.floor(Math.log10(a || step)) - Math.floor(Math.log10(step))));
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(digits);
    return String(Number(v.toFixed(Math.max(0, -Math.floor(Math.log10(step))))));
  }

  // Labels for ticks `step` apart. When the values agree in more leading digits than a label can show (a learning
  // rate that moves by 1e-12 around 1e-4 would read 1.000000e-4 on every tick), the ticks are shown as offsets from
  // the first one, which is given once: {offset: "1.00000000e-4", texts: ["+0", "+1.0e-12", ...]}.
  function tickLabels(values, step) {
    // Powers of ten with rounding noise (0.0000999…, 9.99…e-13) count as the power they stand for.
    const exp10 = (x) => Math.floor(Math.log10(x) + 1e-6);
    const magnitude = Math.max(...values.map(Math.abs));
    const shared = magnitude > 0 ? exp10(magnitude) - exp10(step) : 0;
    if (shared <= 5) return { offset: null, texts: values.map((v) => label(v, step)) };
    const base = values[0];
    const offset = base.toExponential(Math.min(15, exp10(Math.abs(base) || step) - exp10(step)));
    return { offset, texts: values.map((v) => (v - base > 0 ? "+" : "") + label(v - base, step)) };
  }

  // series: [{name, color, points: [[x, y], ...]}]
  function draw(canvas, title, series) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 320, height = canvas.clientHeight || 200;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    g.font = "12px " + style.fontFamily;
    g.fillStyle = style.color;
    const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]));
    canvas.dataset.points = String(all.length);
    if (all.length === 0) { g.fillText(title, 8, 15); return; }
    let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
    let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
    if (x1 === x0) x1 = x0 + 1;
    // Equal up to rounding noise (a constant value) is drawn as constant, not as a range of 1e-20.
    if (y1 - y0 <= Math.max(Math.abs(y0), Math.abs(y1)) * 1e-12) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    const yt = ticks(y0, y1, 4), ystep = yt.length > 1 ? yt[1] - yt[0] : Math.abs(y1 - y0) || 1;
    y0 = Math.min(y0, yt[0]); y1 = Math.max(y1, yt[yt.length - 1]);
    const ylabels = tickLabels(yt, ystep);
    canvas.dataset.ticks = ylabels.texts.join(" ");
    canvas.dataset.offset = ylabels.offset || "";
    g.fillText(ylabels.offset ? `${title} (${ylabels.offset} + tick)` : title, 8, 15);
    const left = 8 + Math.max(...ylabels.texts.map((t) => g.measureText(t).width)) + 6, right = width - 10, top = 24, bottom = height - 22;
    const sx = (x) => left + (x - x0) / (x1 - x0) * (right - left);
    const sy = (y) => bottom - (y - y0) / (y1 - y0) * (bottom - top);
    g.strokeStyle = "rgba(128,128,128,0.25)";
    g.lineWidth = 1;
    g.textAlign = "right";
    yt.forEach((v, i) => {
      g.beginPath(); g.moveTo(left, sy(v)); g.lineTo(right, sy(v)); g.stroke();
      g.fillText(ylabels.texts[i], left - 4, sy(v) + 4);
    });
    g.textAlign = "center";
    // x is the optimizer step: whole numbers only. Ticks are summed steps (1 + 5 x 0.2 is 1.9999999999999998), so
    // "whole" is up to rounding, else a two-step run would show no label for its last step.
    const xt = [...new Set(ticks(x0, x1, 5).filter((v) => Math.abs(v - Math.round(v)) < 1e-6).map(Math.round))];
    canvas.dataset.xticks = xt.join(" ");
    for (const v of xt) g.fillText(String(v), sx(v), height - 6);
    g.textAlign = "left";
    series.forEach((s, i) => {
      const points = s.points.filter((p) => Number.isFinite(p[1]));
      if (points.length === 0) return;
      g.strokeStyle = g.fillStyle = s.color || COLORS[i % COLORS.length];
      g.lineWidth = 1.5;
      g.beginPath();
      points.forEach((p, j) => (j === 0 ? g.moveTo(sx(p[0]), sy(p[1])) : g.lineTo(sx(p[0]), sy(p[1]))));
      g.stroke();
      if (points.length === 1) { g.beginPath(); g.arc(sx(points[0][0]), sy(points[0][1]), 2.5, 0, 7); g.fill(); }
    });
    // A legend when runs are overlaid.
    if (series.length > 1) {
      let x = right;
      g.textAlign = "right";
      for (let i = series.length - 1; i >= 0; i--) {
        g.fillStyle = series[i].color || COLORS[i % COLORS.length];
        g.fillText(series[i].name, x, 15);
        x -= g.measureText(series[i].name).width + 12;
      }
    }
  }

  // Grouped vertical bars: one group per label, one bar per series (a compared run); scores from 0 up, so bars of
  // runs compare by height. series: [{name, color, values: [number per label]}]
  function bars(canvas, title, labels, series) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 480, height = canvas.clientHeight || 220;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    g.font = "12px " + style.fontFamily;
    g.fillStyle = style.color;
    g.textAlign = "left";
    g.fillText(title, 8, 15);
    const finite = series.flatMap((s) => s.values).filter(Number.isFinite);
    canvas.dataset.bars = String(finite.length);
    if (finite.length === 0) return;
    // Accuracy-like scores sit in [0, 1]; anything larger (BLEU in percent) gets its own round top.
    const top = Math.max(...finite, 0) <= 1 ? 1 : ticks(0, Math.max(...finite), 4).at(-1);
    const yt = ticks(0, top, 4), ystep = yt.length > 1 ? yt[1] - yt[0] : top;
    const left = 8 + Math.max(...yt.map((v) => g.measureText(label(v, ystep)).width)) + 6, right = width - 10, y0 = 24, y1 = height - 34;
    const sy = (v) => y1 - (v / top) * (y1 - y0);
    g.strokeStyle = "rgba(128,128,128,0.25)";
    g.lineWidth = 1;
    g.textAlign = "right";
    for (const v of yt) { g.beginPath(); g.moveTo(left, sy(v)); g.lineTo(right, sy(v)); g.stroke(); g.fillText(label(v, ystep), left - 4, sy(v) + 4); }
    const slot = (right - left) / labels.length, barWidth = Math.max(2, (slot * 0.8) / series.length);
    g.textAlign = "center";
    labels.forEach((text, i) => {
      series.forEach((s, j) => {
        const v = s.values[i];
        if (!Number.isFinite(v)) return;
        g.fillStyle = s.color || COLORS[j % COLORS.length];
        const x = left + i * slot + slot * 0.1 + j * barWidth;
        g.fillRect(x, sy(Math.max(0, v)), barWidth - 1, y1 - sy(Math.max(0, v)));
      });
      // Labels shortened to their slot, so neighbours do not overlap on a narrow window.
      g.fillStyle = style.color;
      let shown = text;
      while (shown.length > 3 && g.measureText(shown).width > slot - 4) shown = shown.slice(0, -2) + "…";
      g.fillText(shown, left + (i + 0.5) * slot, y1 + 16);
    });
    if (series.length > 1) {
      let x = right;
      g.textAlign = "right";
      for (let i = series.length - 1; i >= 0; i--) {
        g.fillStyle = series[i].color || COLORS[i % COLORS.length];
        g.fillText(series[i].name, x, 15);
        x -= g.measureText(series[i].name).width + 12;
      }
    }
  }

  // Which keys of logging.jsonl records get a chart, in order: the usual training and DPO keys first, then GRPO's
  // reward keys (reward, reward_std, kl and every rewards/<function>/mean|std, whatever the reward functions are
  // called), then any other numeric key alphabetically; bookkeeping keys are not drawn.
  const CHART_FIRST = ["loss", "learning_rate", "grad_norm", "token_acc", "eval_loss", "eval_token_acc",
    "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "reward", "reward_std", "kl"];
  const NOT_CHARTED = new Set(["global_step", "max_steps", "epoch", "tokens_per_second", "memory_gib", "elapsed_seconds", "train_runtime", "best_metric"]);
  function chartKeys(records) {
    const keys = new Set();
    for (const r of records) for (const [k, v] of Object.entries(r)) if (typeof v === "number" && !NOT_CHARTED.has(k)) keys.add(k);
    const rest = [...keys].filter((k) => !CHART_FIRST.includes(k)).sort();
    return [...CHART_FIRST.filter((k) => keys.has(k)), ...rest.filter((k) => k.startsWith("rewards/")), ...rest.filter((k) => !k.startsWith("rewards/"))];
  }

  return { draw, bars, ticks, tickLabels, chartKeys, COLORS };
})();
