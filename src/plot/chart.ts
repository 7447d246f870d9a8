/**
 * ASCII line charts for the terminal: one or more series on a shared vertical scale, drawn with
 * box-drawing characters, with labelled axis ticks and a legend. No dependencies, so importing the
 * module by URL fetches nothing else.
 * @module
 */

/** Options of {@linkcode lineChart}. */
export interface ChartOptions {
  /** Rows of the plot area (default 12). */
  height?: number;
  /** Names of the series, for the legend. */
  names?: readonly string[];
  /** Title printed above the chart. */
  title?: string;
  /** Digits after the decimal point on the axis (default: chosen from the range). */
  decimals?: number;
  /** Colour the series with ANSI escapes (default false). */
  colors?: boolean;
}

const MARKS = ["●", "○", "◆", "◇", "■", "□"];
const ANSI = ["\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m"];

/**
 * Draws series as a line chart. x is the index (epoch 1, 2, …); short series are stretched over
 * at least `minWidth` columns by linear interpolation so that a 5-epoch run still reads as a curve.
 * Non-finite values break the line.
 */
export function lineChart(
  series: readonly (readonly number[])[],
  options: ChartOptions & { minWidth?: number } = {},
): string {
  const height = Math.max(2, Math.floor(options.height ?? 12));
  const finite = series.flatMap((s) => s.filter((v) => Number.isFinite(v)));
  if (finite.length === 0) return (options.title ? options.title + "\n" : "") + "(no data)";
  let lo = Math.min(...finite), hi = Math.max(...finite);
  if (hi - lo < 1e-12) {
    const pad = Math.abs(hi) * 0.05 || 0.5;
    lo -= pad;
    hi += pad;
  }
  const range = hi - lo;
  const decimals = options.decimals ?? Math.max(0, Math.min(6, 2 - Math.floor(Math.log10(range))));
  const points = Math.max(...series.map((s) => s.length));
  const step = points <= 1 ? 1 : Math.max(1, Math.ceil((options.minWidth ?? 48) / (points - 1)));
  const width = (points - 1) * step + 1;
  const grid: string[][] = Array.from({ length: height }, () => Array(width).fill(" "));
  const rowOf = (v: number) => Math.round((hi - v) / range * (height - 1));
  series.forEach((s, k) => {
    const color = options.colors ? ANSI[k % ANSI.length] : "";
    const reset = options.colors ? "\x1b[0m" : "";
    const put = (r: number, c: number, ch: string) => (grid[r][c] = color + ch + reset);
    // The series at every column, interpolated between points.
    const at = (c: number): number => {
      const i = Math.floor(c / step), f = (c % step) / step;
      if (f === 0 || i + 1 >= s.length) return s[i];
      return s[i] + (s[i + 1] - s[i]) * f;
    };
    for (let c = 0; c < Math.min(width, (s.length - 1) * step + 1); c++) {
      const v = at(c);
      if (!Number.isFinite(v)) continue;
      const r = rowOf(v);
      const prev = c > 0 ? at(c - 1) : NaN;
      if (!Number.isFinite(prev)) {
        put(r, c, "─");
        continue;
      }
      const p = rowOf(prev);
      if (p === r) {
        put(r, c, "─");
      } else if (p > r) { // rising: from row p (below) up to row r
        put(p, c, "╯");
        for (let y = r + 1; y < p; y++) put(y, c, "│");
        put(r, c, "╭");
      } else { // falling
        put(p, c, "╮");
        for (let y = p + 1; y < r; y++) put(y, c, "│");
        put(r, c, "╰");
      }
    }
    for (let i = 0; i < s.length; i++) {
      if (Number.isFinite(s[i])) put(rowOf(s[i]), i * step, MARKS[k % MARKS.length]);
    }
  });
  const labels = Array.from(
    { length: height },
    (_, r) => (hi - r * range / (height - 1)).toFixed(decimals),
  );
  const lw = Math.max(...labels.map((l) => l.length));
  const lines: string[] = [];
  if (options.title) lines.push(options.title);
  for (let r = 0; r < height; r++) lines.push(`${labels[r].padStart(lw)} ┤${grid[r].join("")}`);
  lines.push(" ".repeat(lw) + " └" + "─".repeat(width));
  const ticks = Array(width + 4).fill(" ");
  const every = Math.max(1, Math.ceil(points / 12));
  for (let i = 0; i < points; i += every) {
    const t = String(i + 1);
    for (let j = 0; j < t.length; j++) ticks[i * step + j] = t[j];
  }
  lines.push(" ".repeat(lw + 2) + ticks.join("").trimEnd());
  if (options.names?.length) {
    lines.push(
      " ".repeat(lw + 2) +
        options.names.map((n, k) => `${MARKS[k % MARKS.length]} ${n}`).join("   "),
    );
  }
  return lines.join("\n");
}

/** A training history as `fit` returns it: per-epoch values by metric name. */
export interface HistoryLike {
  /** Per-epoch values, e.g. `{ loss: [...], accuracy: [...], val_loss: [...] }`. */
  history: Record<string, number[]>;
}

/**
 * Charts of a training history: one chart for the losses (`loss`, `val_loss`) and one per other
 * metric with its validation twin, x being the epoch.
 */
export function history(h: HistoryLike, options: ChartOptions = {}): string {
  const keys = Object.keys(h.history);
  const base = keys.filter((k) => !k.startsWith("val_") && k !== "lr" && k !== "learning_rate");
  const parts: string[] = [];
  for (const k of base) {
    const names = [k, ...(h.history[`val_${k}`] ? [`val_${k}`] : [])];
    parts.push(
      lineChart(names.map((n) => h.history[n]), {
        height: 10,
        ...options,
        names,
        title: options.title ?? `${k} per epoch`,
      }),
    );
  }
  return parts.join("\n\n");
}

/** Options of {@linkcode shades}. */
export interface ShadesOptions {
  /** The value drawn as the darkest shade (default: the smallest value). */
  min?: number;
  /** The value drawn as the brightest shade (default: the largest value). */
  max?: number;
  /** Characters from dark to bright (default `" .:-=+*#%@"`). */
  ramp?: string;
  /** Characters per value along a row (default 2, so that images keep their aspect). */
  width?: number;
}

/**
 * An image or feature map as ASCII shades, one text line per row: `values` is row-major
 * `[height, width]` (or `[height, width, channels]` with `channel` picking one).
 *
 * ```ts
 * console.log(plot.shades(map, 28, 28));
 * ```
 */
export function shades(
  values: ArrayLike<number>,
  height: number,
  width: number,
  options: ShadesOptions & { channels?: number; channel?: number } = {},
): string {
  const channels = options.channels ?? 1, channel = options.channel ?? 0;
  if (values.length < height * width * channels || channel >= channels) {
    throw new RangeError(
      `plot.shades: ${values.length} values do not hold ${height}×${width}×${channels} ` +
        `(channel ${channel})`,
    );
  }
  const at = (y: number, x: number) => values[(y * width + x) * channels + channel];
  let lo = options.min ?? Infinity, hi = options.max ?? -Infinity;
  if (options.min === undefined || options.max === undefined) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = at(y, x);
        if (!Number.isFinite(v)) continue;
        if (options.min === undefined) lo = Math.min(lo, v);
        if (options.max === undefined) hi = Math.max(hi, v);
      }
    }
  }
  const ramp = options.ramp ?? " .:-=+*#%@";
  const repeat = options.width ?? 2;
  const span = hi > lo ? hi - lo : 1;
  const lines: string[] = [];
  for (let y = 0; y < height; y++) {
    let line = "";
    for (let x = 0; x < width; x++) {
      const v = at(y, x);
      const t = Number.isFinite(v) ? Math.min(Math.max((v - lo) / span, 0), 1) : 0;
      line += ramp[Math.min(ramp.length - 1, Math.floor(t * ramp.length))].repeat(repeat);
    }
    lines.push(line.trimEnd());
  }
  return lines.join("\n");
}
