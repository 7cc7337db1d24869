// A small line chart on a 2D canvas: the page's live loss and accuracy panels.

const FONT = "12px system-ui, sans-serif";

// "Nice" tick step for a range split into about `count` parts.
function niceStep(range, count) {
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  return power * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
}

// Draws one panel in the rectangle (x, y, w, h) of `ctx`.
// panel: { title, xMax, yMin, yMax, format(y), series: [{ label, color, points: [[x, y]], dots }] }
export function drawPanel(ctx, x, y, w, h, panel) {
  const left = x + 44, right = x + w - 8, top = y + 22, bottom = y + h - 26;
  const sx = (v) => left + (v / panel.xMax) * (right - left);
  const sy = (v) => bottom - ((v - panel.yMin) / (panel.yMax - panel.yMin)) * (bottom - top);
  ctx.save();
  ctx.font = FONT;
  ctx.fillStyle = "#222";
  ctx.textBaseline = "alphabetic";
  ctx.fillText(panel.title, left, y + 14);
  // Grid and axis labels.
  ctx.strokeStyle = "#e5e5e5";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const yStep = niceStep(panel.yMax - panel.yMin, 4);
  for (let v = Math.ceil(panel.yMin / yStep) * yStep; v <= panel.yMax + 1e-9; v += yStep) {
    ctx.beginPath();
    ctx.moveTo(left, sy(v));
    ctx.lineTo(right, sy(v));
    ctx.stroke();
    ctx.fillText(panel.format(v), left - 4, sy(v));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const xStep = Math.max(1, niceStep(panel.xMax, 5));
  for (let v = 0; v <= panel.xMax + 1e-9; v += xStep) {
    ctx.beginPath();
    ctx.moveTo(sx(v), top);
    ctx.lineTo(sx(v), bottom);
    ctx.stroke();
    ctx.fillText(String(v), sx(v), bottom + 4);
  }
  ctx.fillText("epoch", (left + right) / 2, bottom + 13);
  ctx.strokeStyle = "#999";
  ctx.strokeRect(left, top, right - left, bottom - top);
  // Series, clipped to the plot area (with room for a dot on its edge).
  ctx.beginPath();
  ctx.rect(left - 4, top - 4, right - left + 8, bottom - top + 8);
  ctx.clip();
  for (const s of panel.series) {
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.points.forEach(([px, py], i) => (i ? ctx.lineTo(sx(px), sy(py)) : ctx.moveTo(sx(px), sy(py))));
    ctx.stroke();
    if (s.dots) {
      for (const [px, py] of s.points) {
        ctx.beginPath();
        ctx.arc(sx(px), sy(py), 3, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }
  ctx.restore();
  // Legend, top right.
  ctx.save();
  ctx.font = FONT;
  ctx.textAlign = "right";
  ctx.textBaseline = "alphabetic";
  let lx = right;
  for (const s of [...panel.series].reverse()) {
    ctx.fillStyle = "#222";
    ctx.fillText(s.label, lx, y + 14);
    lx -= ctx.measureText(s.label).width + 4;
    ctx.fillStyle = s.color;
    ctx.fillRect(lx - 12, y + 7, 12, 4);
    lx -= 22;
  }
  ctx.restore();
}

// The training chart: loss (left) and accuracy (right) against epochs.
// h: { epochs, trainLoss, trainAcc, testLoss, testAcc } with [[epoch, value]] arrays.
export function drawTraining(canvas, h) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const half = canvas.width / 2;
  const losses = [...h.trainLoss, ...h.testLoss].map((p) => p[1]);
  const lossMax = Math.max(0.5, ...losses) * 1.05;
  drawPanel(ctx, 0, 0, half, canvas.height, {
    title: "loss",
    xMax: h.epochs,
    yMin: 0,
    yMax: lossMax,
    format: (v) => v.toFixed(v < 1 ? 2 : 1),
    series: [
      { label: "train", color: "#3a7bd5", points: h.trainLoss },
      { label: "test", color: "#e8590c", points: h.testLoss, dots: true },
    ],
  });
  const accs = [...h.trainAcc, ...h.testAcc].map((p) => p[1]);
  const accMin = accs.length ? Math.min(90, Math.floor(Math.min(...accs) / 10) * 10) : 0;
  drawPanel(ctx, half, 0, half, canvas.height, {
    title: "accuracy (%)",
    xMax: h.epochs,
    yMin: accMin,
    yMax: 100,
    format: (v) => v.toFixed(0),
    series: [
      { label: "train", color: "#3a7bd5", points: h.trainAcc },
      { label: "test", color: "#e8590c", points: h.testAcc, dots: true },
    ],
  });
}
