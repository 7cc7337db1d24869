// The test confusion matrix on a 2D canvas: rows are the true classes, columns the predicted
// ones, each cell shaded by its share of its row, with its count; each class's accuracy at the
// right. Long class names are cut to fit.

const FONT = "12px system-ui, sans-serif";

function fit(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let t = text;
  while (t.length > 1 && ctx.measureText(`${t}…`).width > width) t = t.slice(0, -1);
  return `${t}…`;
}

export function drawConfusion(canvas, { classes, matrix }) {
  const n = classes.length;
  const cell = Math.max(18, Math.min(48, Math.floor(560 / n)));
  const ctx = canvas.getContext("2d");
  ctx.font = FONT;
  const label = Math.min(120, Math.max(...classes.map((c) => ctx.measureText(c).width)) + 8);
  const top = 40 + label;
  const left = 24 + label;
  canvas.width = left + n * cell + 70;
  canvas.height = top + n * cell + 10;
  ctx.font = FONT;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const total = matrix.flat().reduce((a, b) => a + b, 0);
  const right = matrix.reduce((a, row, i) => a + row[i], 0);
  ctx.fillStyle = "#222";
  ctx.textBaseline = "middle";
  ctx.fillText(`test set: ${right.toLocaleString()} of ${total.toLocaleString()} right (${((100 * right) / Math.max(total, 1)).toFixed(2)}%)`, 4, 12);
  ctx.fillStyle = "#555";
  ctx.fillText("predicted →", left, 30);
  ctx.save();
  ctx.translate(10, top + (n * cell) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText("true class", 0, 0);
  ctx.restore();
  for (let i = 0; i < n; i++) {
    const rowSum = matrix[i].reduce((a, b) => a + b, 0);
    ctx.fillStyle = "#222";
    ctx.textAlign = "right";
    ctx.fillText(fit(ctx, classes[i], label - 8), left - 6, top + i * cell + cell / 2);
    ctx.save();
    ctx.translate(left + i * cell + cell / 2, top - 6);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    ctx.fillText(fit(ctx, classes[i], label - 8), 0, 0);
    ctx.restore();
    for (let j = 0; j < n; j++) {
      const v = matrix[i][j];
      const share = rowSum ? v / rowSum : 0;
      // Right answers in blue, mistakes in red, darker for a larger share of the row.
      const hue = i === j ? "58, 123, 213" : "214, 69, 65";
      ctx.fillStyle = v ? `rgba(${hue}, ${0.12 + 0.88 * share})` : "#fafafa";
      ctx.fillRect(left + j * cell, top + i * cell, cell - 1, cell - 1);
      if (v && cell >= 22) {
        ctx.fillStyle = share > 0.5 ? "#fff" : "#222";
        ctx.textAlign = "center";
        ctx.fillText(String(v), left + j * cell + cell / 2, top + i * cell + cell / 2);
      }
    }
    ctx.fillStyle = "#222";
    ctx.textAlign = "left";
    ctx.fillText(`${((100 * matrix[i][i]) / Math.max(rowSum, 1)).toFixed(1)}%`, left + n * cell + 6, top + i * cell + cell / 2);
  }
}
