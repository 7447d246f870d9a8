/**
 * Training callbacks and the History that `fit` returns.
 * @module
 */
import { WgradError } from "../errors.ts";

/** What a callback can see and change of the model being trained. */
export interface TrainingControl {
  /**
   * Set to true to end training: from `onEpochEnd`, after that epoch; from `onBatchEnd`, within
   * the epoch after the steps already submitted, which then validates and calls `onEpochEnd` as
   * usual (Keras's `model.stop_training`).
   */
  stopTraining: boolean;
  /** The optimizer's learning rate (settable). */
  learningRate: number;
  /** The model's current weights (for restoring the best ones). */
  getWeights(): Promise<Float32Array[]>;
  /** Replaces the model's weights. */
  setWeights(w: Float32Array[]): void;
  /** Saves the model with its training state into a directory (`model.save(dir)`). */
  save(dir: string): Promise<void>;
  /** Saves the weights alone to a safetensors file (`model.saveWeights(path)`). */
  saveWeights(path: string): Promise<void>;
}

/** Hooks called during `fit`. Every hook may be async; `fit` awaits it. */
export interface Callback {
  /** Before the first epoch. */
  onTrainBegin?(control: TrainingControl): void | Promise<void>;
  /** At the start of each epoch (0-based). */
  onEpochBegin?(epoch: number, control: TrainingControl): void | Promise<void>;
  /**
   * After `batch` (0-based, within the epoch), with the epoch's running loss and metrics up to
   * that batch. Steps are not awaited one by one: `fit` reads the running figures back every few
   * steps (about every 100 ms, and after the last step), and calls this hook once per readback,
   * for the last batch it covers, while the GPU may already be running later steps. Batches
   * between two readbacks get no call of their own.
   */
  onBatchEnd?(
    batch: number,
    logs: Record<string, number>,
    control: TrainingControl,
  ): void | Promise<void>;
  /** After each epoch, with its loss, metrics and validation figures. */
  onEpochEnd?(
    epoch: number,
    logs: Record<string, number>,
    control: TrainingControl,
  ): void | Promise<void>;
  /**
   * When training ends normally (after the last epoch, or when a callback stopped it), with the
   * last epoch's logs; not after an error or an interrupt (as in Keras).
   */
  onTrainEnd?(control: TrainingControl, logs: Record<string, number>): void | Promise<void>;
  /**
   * When Ctrl-C (SIGINT) stops `fit`, after the step in progress: `epoch` is the epoch in
   * progress (or the last one completed, when it came between epochs) and `logs` its running
   * figures. `fit` throws `Deno.errors.Interrupted` afterwards.
   */
  onInterrupt?(
    epoch: number,
    logs: Record<string, number>,
    control: TrainingControl,
  ): void | Promise<void>;
}

/** Per-epoch figures of a training run, as Keras's History. */
export class History {
  /** Values by name (`loss`, `accuracy`, `val_loss`, …), one per epoch. */
  readonly history: Record<string, number[]> = {};
  /** The epochs trained (0-based). */
  readonly epoch: number[] = [];

  /** Adds one epoch's logs. */
  record(epoch: number, logs: Record<string, number>): void {
    this.epoch.push(epoch);
    for (const [k, v] of Object.entries(logs)) (this.history[k] ??= []).push(v);
  }
}

/** Options of {@linkcode earlyStopping}. */
export interface EarlyStoppingOptions {
  /** The figure to watch (default `"val_loss"`). */
  monitor?: string;
  /** Smallest change that counts as an improvement (default 0). */
  minDelta?: number;
  /** Epochs without improvement before stopping (default 0). */
  patience?: number;
  /** `"min"`, `"max"`, or `"auto"` (max for accuracy-like names, default). */
  mode?: "min" | "max" | "auto";
  /**
   * A value the figure must beat: until it does, no epoch counts as an improvement for the
   * patience, so training stops after `patience` epochs that never reach it (default none).
   */
  baseline?: number;
  /**
   * When training ends, put back the weights of the best epoch (default false). As in Keras 3,
   * this happens whether training stopped early or ran all its epochs; the weights are read
   * back from the GPU at each improvement.
   */
  restoreBestWeights?: boolean;
  /** Epochs to wait before monitoring starts (default 0). */
  startFromEpoch?: number;
  /** 1 prints when it stops and when it restores weights (default 0). */
  verbose?: 0 | 1;
}

/** Stops training when a monitored figure stops improving (Keras's EarlyStopping). */
export function earlyStopping(
  options: EarlyStoppingOptions = {},
): Callback & { stoppedEpoch: number; bestEpoch: number } {
  const monitor = options.monitor ?? "val_loss";
  const minDelta = Math.abs(options.minDelta ?? 0);
  const patience = options.patience ?? 0;
  const baseline = options.baseline;
  if (baseline !== undefined && !Number.isFinite(baseline)) {
    throw new WgradError(
      "value",
      `earlyStopping: baseline must be a finite number, got ${baseline}`,
    );
  }
  const mode = options.mode === "min" || options.mode === "max"
    ? options.mode
    : /acc|auc|precision|recall/.test(monitor)
    ? "max"
    : "min";
  const better = (a: number, b: number) => mode === "min" ? a < b - minDelta : a > b + minDelta;
  let best = mode === "min" ? Infinity : -Infinity;
  let wait = 0;
  let bestWeights: Float32Array[] | null = null;
  const cb = {
    /** The epoch (0-based) at which it stopped training, or -1. */
    stoppedEpoch: -1,
    /** The epoch (0-based) with the best figure so far, or -1. */
    bestEpoch: -1,
    onTrainBegin() {
      best = mode === "min" ? Infinity : -Infinity;
      wait = 0;
      bestWeights = null;
      cb.stoppedEpoch = -1;
      cb.bestEpoch = -1;
    },
    async onEpochEnd(epoch: number, logs: Record<string, number>, control: TrainingControl) {
      const v = monitored("earlyStopping", monitor, logs);
      if (epoch < (options.startFromEpoch ?? 0)) return;
      wait++;
      // The first monitored epoch always counts as the best so far, as in Keras (best = None),
      // even when its figure is NaN.
      if (cb.bestEpoch < 0 || better(v, best)) {
        best = v;
        cb.bestEpoch = epoch;
        if (options.restoreBestWeights) bestWeights = await control.getWeights();
        // Only an epoch that also beats the baseline restarts the patience (Keras).
        if (baseline === undefined || better(v, baseline)) wait = 0;
        return;
      }
      if (wait >= patience && epoch > 0) {
        control.stopTraining = true;
        cb.stoppedEpoch = epoch;
      }
    },
    onTrainEnd(control: TrainingControl) {
      if (options.verbose && cb.stoppedEpoch >= 0) {
        console.log(`Epoch ${cb.stoppedEpoch + 1}: early stopping`);
      }
      if (options.restoreBestWeights && bestWeights) {
        if (options.verbose) {
          console.log(
            `Restoring model weights from the end of the best epoch: ${cb.bestEpoch + 1}.`,
          );
        }
        control.setWeights(bestWeights);
      }
    },
  };
  return cb;
}

/** The monitored figure of an epoch's logs; an error naming the callback when it is missing. */
function monitored(callback: string, monitor: string, logs: Record<string, number>): number {
  const v = logs[monitor];
  if (v === undefined) {
    throw new WgradError(
      "value",
      `${callback}: "${monitor}" is not among the epoch's figures (${
        Object.keys(logs).join(", ")
      })${
        monitor.startsWith("val_")
          ? "; validation figures need validationData or validationSplit"
          : ""
      }`,
    );
  }
  return v;
}

/** Options of {@linkcode reduceLrOnPlateau}. */
export interface ReduceLrOnPlateauOptions {
  /** The figure to watch (default `"val_loss"`). */
  monitor?: string;
  /** Factor by which the rate is multiplied (default 0.1). */
  factor?: number;
  /** Epochs without improvement before reducing (default 10). */
  patience?: number;
  /** `"min"`, `"max"` or `"auto"`. */
  mode?: "min" | "max" | "auto";
  /** Smallest change that counts as an improvement (default 1e-4). */
  minDelta?: number;
  /** Epochs to wait after a reduction (default 0). */
  cooldown?: number;
  /** Lower bound of the rate (default 0). */
  minLr?: number;
  /** 1 prints each reduction (default 0). */
  verbose?: 0 | 1;
}

/** Multiplies the learning rate by `factor` when a figure stops improving (Keras's ReduceLROnPlateau). */
export function reduceLrOnPlateau(options: ReduceLrOnPlateauOptions = {}): Callback {
  const monitor = options.monitor ?? "val_loss";
  const factor = options.factor ?? 0.1;
  if (!(factor > 0 && factor < 1)) {
    throw new WgradError("value", `reduceLrOnPlateau: factor must be in (0, 1), got ${factor}`);
  }
  const patience = options.patience ?? 10;
  const minDelta = options.minDelta ?? 1e-4;
  const cooldown = options.cooldown ?? 0;
  const minLr = options.minLr ?? 0;
  const mode = options.mode === "min" || options.mode === "max"
    ? options.mode
    : /acc/.test(monitor)
    ? "max"
    : "min";
  let best = mode === "min" ? Infinity : -Infinity;
  let wait = 0;
  let cool = 0;
  return {
    onTrainBegin() {
      best = mode === "min" ? Infinity : -Infinity;
      wait = 0;
      cool = 0;
    },
    onEpochEnd(epoch, logs, control) {
      const v = monitored("reduceLrOnPlateau", monitor, logs);
      logs.learning_rate = control.learningRate;
      if (cool > 0) {
        cool--;
        wait = 0;
      }
      if (mode === "min" ? v < best - minDelta : v > best + minDelta) {
        best = v;
        wait = 0;
      } else if (cool === 0 && ++wait >= patience) {
        // At minLr already, nothing changes and the patience keeps counting (Keras).
        const old = control.learningRate;
        const lr = Math.max(old * factor, minLr);
        if (lr < old) {
          control.learningRate = lr;
          if (options.verbose) {
            console.log(`Epoch ${epoch + 1}: reduceLrOnPlateau reducing learning rate to ${lr}.`);
          }
          cool = cooldown;
          wait = 0;
        }
      }
    },
  };
}

/** Options of {@linkcode modelCheckpoint}. */
export interface ModelCheckpointOptions {
  /** The figure that decides the best checkpoint (default `"val_loss"`). */
  monitor?: string;
  /** `"min"`, `"max"`, or `"auto"` (max for accuracy-like names, default). */
  mode?: "min" | "max" | "auto";
  /** Save only when the monitored figure improves on the best so far (default false). */
  saveBestOnly?: boolean;
  /**
   * `"epoch"` (default): save after each epoch; a number n: every n training steps, at the first
   * batch callback (they come with the running figures' readbacks) n or more steps after the
   * last save. The path may then use `{batch}`.
   */
  saveFreq?: "epoch" | number;
  /** Keep only the last n checkpoints this callback wrote, removing older ones (default: all). */
  keepLast?: number;
  /** Write the weights alone to one safetensors file instead of a model directory (default false). */
  saveWeightsOnly?: boolean;
  /** 1: print a line per checkpoint saved (default 0). */
  verbose?: 0 | 1;
}

/** What {@linkcode modelCheckpoint} returns: a callback that also reports what it saved. */
export interface ModelCheckpoint extends Callback {
  /** The paths written, oldest first (without those removed by `keepLast`). */
  readonly saved: string[];
  /** The best value of the monitored figure so far (±Infinity before the first). */
  readonly best: number;
}

/**
 * Formats a checkpoint path as Keras does with Python's `str.format`: `{epoch}` is the 1-based
 * epoch, `{batch}` the 1-based batch within it (checkpoints saved every `saveFreq` steps only),
 * `{name}` any figure of the logs, each with an optional format spec such as `{epoch:02d}`,
 * `{val_loss:.4f}`, `{loss:.2e}` or `{loss:g}` (fill `0`, width, precision, and one of `d`, `f`,
 * `e`, `g`, `%`, as Python writes them).
 * Figures missing from the logs are an error unless `missing` is given (it is written instead).
 */
export function formatCheckpointPath(
  template: string,
  epoch: number,
  logs: Record<string, number>,
  missing?: string,
  batch?: number,
): string {
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}/g, (_m, key, spec) => {
    const v = key === "epoch" ? epoch : key === "batch" && !(key in logs) ? batch : logs[key];
    if (v === undefined) {
      if (missing !== undefined) return missing;
      throw new WgradError(
        "value",
        `modelCheckpoint: "{${key}}" in the path "${template}" is not among the ` +
          `figures (epoch, ${batch === undefined ? "" : "batch, "}${
            Object.keys(logs).join(", ")
          })` +
          (key === "batch" ? "; {batch} needs a numeric saveFreq" : ""),
      );
    }
    return formatNumber(v, spec ?? "", template);
  });
}

/** Python's `format(v, ".{p}g")`: p significant digits, scientific below 1e-4 or from 10^p. */
function pythonG(v: number, p: number): string {
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const exp = Number(v.toExponential(p - 1).split("e")[1]);
  const strip = (t: string) => t.includes(".") ? t.replace(/0+$/, "").replace(/\.$/, "") : t;
  if (exp < -4 || exp >= p) {
    const [mant, e] = v.toExponential(p - 1).split("e");
    const sign = e.startsWith("-") ? "-" : "+";
    return `${strip(mant)}e${sign}${e.replace(/^[+-]/, "").padStart(2, "0")}`;
  }
  return strip(v.toFixed(Math.max(0, p - 1 - exp)));
}

function formatNumber(v: number, spec: string, template: string): string {
  const m = /^(0)?(\d+)?(?:\.(\d+))?([dfeEgG%])?$/.exec(spec);
  if (!m) {
    throw new WgradError(
      "value",
      `modelCheckpoint: format spec ":${spec}" in "${template}" is not supported ` +
        "(use e.g. 02d, .4f, .2e, 8.3g)",
    );
  }
  const [, zero, widthS, precS, type] = m;
  const prec = precS === undefined ? undefined : Number(precS);
  let text: string;
  if (!Number.isFinite(v)) text = Number.isNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";
  else {
    switch (type) {
      case "d":
        text = Math.round(v).toString();
        break;
      case "f":
        text = v.toFixed(prec ?? 6);
        break;
      case "%":
        text = (v * 100).toFixed(prec ?? 6) + "%";
        break;
      case "e":
      case "E": {
        // Python writes at least two exponent digits: 1.5e-03.
        const t = v.toExponential(prec ?? 6).replace(
          /e([+-])(\d)$/,
          (_m, sign, d) => `e${sign}0${d}`,
        );
        text = type === "E" ? t.toUpperCase() : t;
        break;
      }
      case "g":
      case "G": {
        const t = pythonG(v, prec === undefined ? 6 : Math.max(prec, 1));
        text = type === "G" ? t.toUpperCase() : t;
        break;
      }
      default:
        text = prec === undefined ? String(v) : String(Number(v.toPrecision(prec)));
    }
  }
  const width = widthS === undefined ? 0 : Number(widthS);
  if (text.length >= width) return text;
  if (zero && Number.isFinite(v)) {
    const neg = text.startsWith("-");
    const body = neg ? text.slice(1) : text;
    return (neg ? "-" : "") + body.padStart(width - (neg ? 1 : 0), "0");
  }
  return text.padStart(width, " ");
}

/**
 * Saves the model during `fit`, as Keras's ModelCheckpoint: after every epoch (or every
 * `saveFreq` steps), or only when `monitor` improves (`saveBestOnly`). `path` is a directory
 * (`model.save`: architecture, weights, optimizer state, epoch and step counter, so that
 * `nn.loadModel(path)` and `fit(…, { initialEpoch })` resume exactly) or, with
 * `saveWeightsOnly`, a safetensors file; it may contain `{epoch}` (1-based), `{batch}` (with a
 * numeric `saveFreq`) and figures such as
 * `{val_loss:.4f}` (see {@linkcode formatCheckpointPath}). Every file is replaced atomically, so
 * a process killed while saving leaves the previous checkpoint or the new one. With `keepLast`,
 * older checkpoints this callback wrote are removed. When Ctrl-C stops `fit`, the current state is
 * saved too (unless `saveBestOnly`, which keeps the best checkpoint as it is).
 *
 * ```ts
 * await model.fit(train, {
 *   epochs: 10,
 *   callbacks: [callbacks.modelCheckpoint("ckpt/epoch-{epoch:02d}", { keepLast: 2 })],
 * });
 * ```
 */
export function modelCheckpoint(
  path: string,
  options: ModelCheckpointOptions = {},
): ModelCheckpoint {
  if (typeof path !== "string" || path === "") {
    throw new WgradError("value", `modelCheckpoint: path must be a non-empty string`);
  }
  const monitor = options.monitor ?? "val_loss";
  const mode = options.mode === "min" || options.mode === "max"
    ? options.mode
    : /acc|auc|precision|recall/.test(monitor)
    ? "max"
    : "min";
  const saveFreq = options.saveFreq ?? "epoch";
  if (saveFreq !== "epoch" && !(Number.isInteger(saveFreq) && saveFreq > 0)) {
    throw new WgradError(
      "value",
      `modelCheckpoint: saveFreq must be "epoch" or a positive integer, got ${String(saveFreq)}`,
    );
  }
  const keepLast = options.keepLast;
  if (keepLast !== undefined && !(Number.isInteger(keepLast) && keepLast > 0)) {
    throw new WgradError(
      "value",
      `modelCheckpoint: keepLast must be a positive integer, got ${keepLast}`,
    );
  }
  const saveBestOnly = options.saveBestOnly ?? false;
  const saved: string[] = [];
  let best = mode === "min" ? Infinity : -Infinity;
  let stepsSince = 0;
  let lastBatch = -1;

  const write = async (
    epoch: number,
    logs: Record<string, number>,
    control: TrainingControl,
    missing?: string,
    batch?: number,
  ) => {
    const target = formatCheckpointPath(path, epoch + 1, logs, missing, batch);
    if (options.saveWeightsOnly) await control.saveWeights(target);
    else await control.save(target);
    const i = saved.indexOf(target);
    if (i >= 0) saved.splice(i, 1);
    saved.push(target);
    if (options.verbose) console.log(`Epoch ${epoch + 1}: saved the model to ${target}`);
    while (keepLast !== undefined && saved.length > keepLast) {
      const old = saved.shift()!;
      try {
        await Deno.remove(old, { recursive: true });
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
  };

  const maybeSave = async (
    epoch: number,
    logs: Record<string, number>,
    control: TrainingControl,
    batch?: number,
  ) => {
    if (!saveBestOnly) return await write(epoch, logs, control, undefined, batch);
    const v = logs[monitor];
    if (v === undefined) {
      throw new WgradError(
        "value",
        `modelCheckpoint: "${monitor}" is not among the figures (${
          Object.keys(logs).join(", ")
        }); saveBestOnly needs it`,
      );
    }
    if (mode === "min" ? v < best : v > best) {
      best = v;
      await write(epoch, logs, control, undefined, batch);
    }
  };

  let currentEpoch = 0;
  return {
    saved,
    get best() {
      return best;
    },
    onTrainBegin() {
      stepsSince = 0;
    },
    onEpochBegin(epoch) {
      currentEpoch = epoch;
      lastBatch = -1;
    },
    async onBatchEnd(batch, logs, control) {
      if (saveFreq === "epoch") return;
      stepsSince += batch - lastBatch;
      lastBatch = batch;
      if (stepsSince >= saveFreq) {
        stepsSince = 0;
        await maybeSave(currentEpoch, logs, control, batch + 1);
      }
    },
    async onEpochEnd(epoch, logs, control) {
      if (saveFreq === "epoch") await maybeSave(epoch, logs, control);
    },
    async onInterrupt(epoch, logs, control) {
      if (!saveBestOnly) await write(epoch, logs, control, "nan");
    },
  };
}
