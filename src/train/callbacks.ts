/**
 * Training callbacks and the History that `fit` returns.
 * @module
 */
import { WgradError } from "../errors.ts";

/** What a callback can see and change of the model being trained. */
export interface TrainingControl {
  /** Set to true to end training after the current epoch. */
  stopTraining: boolean;
  /** The optimizer's learning rate (settable). */
  learningRate: number;
  /** The model's current weights (for restoring the best ones). */
  getWeights(): Promise<Float32Array[]>;
  /** Replaces the model's weights. */
  setWeights(w: Float32Array[]): void;
}

/** Hooks called during `fit`. Every hook may be async; `fit` awaits it. */
export interface Callback {
  /** Before the first epoch. */
  onTrainBegin?(control: TrainingControl): void | Promise<void>;
  /** At the start of each epoch (0-based). */
  onEpochBegin?(epoch: number, control: TrainingControl): void | Promise<void>;
  /**
   * After `batch` (0-based, within the epoch). The logs hold the running loss and metrics as of
   * the latest readback, which may lag a few steps: steps are not awaited one by one.
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
  /** After the last epoch. */
  onTrainEnd?(control: TrainingControl): void | Promise<void>;
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
  /** Restore the weights of the best epoch when stopping (default false). */
  restoreBestWeights?: boolean;
  /** Epochs to wait before monitoring starts (default 0). */
  startFromEpoch?: number;
}

/** Stops training when a monitored figure stops improving (Keras's EarlyStopping). */
export function earlyStopping(
  options: EarlyStoppingOptions = {},
): Callback & { stoppedEpoch: number } {
  const monitor = options.monitor ?? "val_loss";
  const minDelta = Math.abs(options.minDelta ?? 0);
  const patience = options.patience ?? 0;
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
    stoppedEpoch: -1,
    onTrainBegin() {
      best = mode === "min" ? Infinity : -Infinity;
      wait = 0;
      bestWeights = null;
    },
    async onEpochEnd(epoch: number, logs: Record<string, number>, control: TrainingControl) {
      const v = logs[monitor];
      if (v === undefined) {
        throw new WgradError(
          "value",
          `earlyStopping: "${monitor}" is not among the epoch's figures (${
            Object.keys(logs).join(", ")
          })`,
        );
      }
      if (epoch < (options.startFromEpoch ?? 0)) return;
      if (better(v, best)) {
        best = v;
        wait = 0;
        if (options.restoreBestWeights) bestWeights = await control.getWeights();
        return;
      }
      wait++;
      if (wait >= patience && epoch > 0) {
        control.stopTraining = true;
        cb.stoppedEpoch = epoch;
        if (options.restoreBestWeights && bestWeights) control.setWeights(bestWeights);
      }
    },
  };
  return cb;
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
    onEpochEnd(_epoch, logs, control) {
      const v = logs[monitor];
      if (v === undefined) return;
      logs.learning_rate = control.learningRate;
      if (cool > 0) {
        cool--;
        wait = 0;
      }
      if (mode === "min" ? v < best - minDelta : v > best + minDelta) {
        best = v;
        wait = 0;
      } else if (cool === 0 && ++wait >= patience) {
        const lr = Math.max(control.learningRate * factor, minLr);
        if (lr < control.learningRate) control.learningRate = lr;
        cool = cooldown;
        wait = 0;
      }
    },
  };
}
