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
    g.fillText(title, 8, 15);
    const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]));
    canvas.dataset.points = String(all.length);
    if (all.length === 0) return;
    let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
    let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    const yt = ticks(y0, y1, 4), ystep = yt.length > 1 ? yt[1] - yt[0] : Math.abs(y1 - y0) || 1;
    y0 = Math.min(y0, yt[0]); y1 = Math.max(y1, yt[yt.length - 1]);
    const left = 8 + Math.max(...yt.map((v) => g.measureText(label(v, ystep)).width)) + 6, right = width - 10, top = 24, bottom = height - 22;
    const sx = (x) => left + (x - x0) / (x1 - x0) * (right - left);
    const sy = (y) => bottom - (y - y0) / (y1 - y0) * (bottom - top);
    g.strokeStyle = "rgba(128,128,128,0.25)";
    g.lineWidth = 1;
    g.textAlign = "right";
    for (const v of yt) {
      g.beginPath(); g.moveTo(left, sy(v)); g.lineTo(right, sy(v)); g.stroke();
      g.fillText(label(v, ystep), left - 4, sy(v) + 4);
    }
    g.textAlign = "center";
    // x is the optimizer step: whole numbers only.
    for (const v of ticks(x0, x1, 5).filter((v) => Number.isInteger(v))) g.fillText(String(v), sx(v), height - 6);
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

  return { draw, COLORS };
})();
