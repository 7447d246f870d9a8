/**
 * The Keras-style progress line: `1875/1875 [==============================] - 12s 6ms/step -
 * loss: 0.4921 - accuracy: 0.8267`. On a terminal it redraws in place; otherwise it prints one
 * plain line per epoch.
 * @module
 */

const encoder = new TextEncoder();

/** Where progress goes; by default standard output. */
export interface ProgressSink {
  /** Writes text without a newline. */
  write(text: string): void;
  /** Whether the sink is a terminal (redraw in place). */
  isTerminal: boolean;
}

/** Standard output as a progress sink. */
export function stdoutSink(): ProgressSink {
  let tty = false;
  try {
    tty = Deno.stdout.isTerminal();
  } catch {
    tty = false;
  }
  return { write: (t) => void Deno.stdout.writeSync(encoder.encode(t)), isTerminal: tty };
}

/** Formats metric values as Keras does: ` - loss: 0.4921 - accuracy: 0.8267`. */
export function formatMetrics(values: Record<string, number>): string {
  return Object.entries(values)
    .map(([k, v]) =>
      ` - ${k}: ${Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(4)}`
    )
    .join("");
}

function formatDuration(seconds: number): string {
  if (seconds >= 3600) {
    return `${Math.floor(seconds / 3600)}:${
      String(Math.floor(seconds % 3600 / 60)).padStart(2, "0")
    }:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;
  }
  if (seconds >= 60) {
    return `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;
  }
  return `${Math.round(seconds)}s`;
}

function formatPerStep(seconds: number): string {
  if (seconds >= 1) return `${seconds.toFixed(0)}s/step`;
  if (seconds >= 1e-3) return `${(seconds * 1e3).toFixed(0)}ms/step`;
  return `${(seconds * 1e6).toFixed(0)}us/step`;
}

/** One epoch's progress line. */
export class ProgressBar {
  #start = performance.now();
  #lastDraw = 0;
  #width = 30;

  /**
   * @param total steps in the epoch
   * @param verbose 0 silent, 1 progress bar, 2 one line per epoch
   */
  constructor(
    readonly total: number,
    readonly verbose: 0 | 1 | 2,
    private readonly sink: ProgressSink = stdoutSink(),
  ) {}

  /** Prints the epoch header (`Epoch 3/10`). */
  static header(epoch: number, epochs: number, verbose: number, sink = stdoutSink()): void {
    if (verbose > 0) sink.write(`Epoch ${epoch}/${epochs}\n`);
  }

  /** Redraws after `done` steps with the latest metric values (throttled to 10 per second). */
  update(done: number, values: Record<string, number>): void {
    if (this.verbose !== 1 || !this.sink.isTerminal) return;
    const now = performance.now();
    if (now - this.#lastDraw < 100 && done < this.total) return;
    this.#lastDraw = now;
    const elapsed = (now - this.#start) / 1000;
    const eta = done > 0 ? elapsed / done * (this.total - done) : 0;
    const line = `${this.#bar(done)} - ETA: ${formatDuration(eta)}${formatMetrics(values)}`;
    this.sink.write(`\r${line}\x1b[K`);
  }

  /**
   * Prints the epoch's final line with its time and metrics; `done` is the steps that ran (fewer
   * than `total` when a callback stopped training within the epoch).
   */
  finish(values: Record<string, number>, done = this.total): string {
    const elapsed = (performance.now() - this.#start) / 1000;
    const line = `${this.#bar(done)} - ${formatDuration(elapsed)} ` +
      `${formatPerStep(elapsed / Math.max(1, done))}${formatMetrics(values)}`;
    if (this.verbose === 0) return line;
    if (this.sink.isTerminal && this.verbose === 1) this.sink.write(`\r${line}\x1b[K\n`);
    else this.sink.write(line + "\n");
    return line;
  }

  #bar(done: number): string {
    const digits = String(this.total).length;
    const filled = this.total ? Math.floor(this.#width * done / this.total) : this.#width;
    const bar = done >= this.total
      ? "=".repeat(this.#width)
      : "=".repeat(Math.max(0, filled - 1)) + ">" + ".".repeat(this.#width - Math.max(1, filled));
    return `${String(done).padStart(digits)}/${this.total} [${bar}]`;
  }
}
