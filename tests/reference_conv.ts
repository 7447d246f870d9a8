/**
 * Float64 CPU references for convolution, pooling and batch normalisation (NHWC), written plainly:
 * one loop nest per output, padding computed from TensorFlow's formulas independently of the
 * engine's code. Alongside each convolution result they return Σ|a||b| per output, the scale of
 * the f32 summation's rounding error.
 * @module
 */

/** Strides, dilation and padding of a convolution or pooling window. */
export interface Window {
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  padding: "same" | "valid";
}

/** Output size and padding before, along one axis, as TensorFlow computes them. */
export function tfPad(
  size: number,
  k: number,
  s: number,
  d: number,
  padding: "same" | "valid",
): { out: number; before: number } {
  const eff = (k - 1) * d + 1;
  if (padding === "valid") return { out: Math.floor((size - eff) / s) + 1, before: 0 };
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + eff - size, 0);
  return { out, before: Math.floor(total / 2) };
}

/** A convolution's result: y (float64), Σ|x·w| (+|b|) per output, the output shape. */
export interface ConvRef {
  y: Float64Array;
  abs: Float64Array;
  shape: [number, number, number, number];
}

/** conv2d(x [n,h,w,ci], k [kh,kw,ci,co]) + bias, NHWC, TensorFlow padding. */
export function conv2dRef(
  x: ArrayLike<number>,
  xs: readonly number[],
  k: ArrayLike<number>,
  ks: readonly number[],
  win: Window,
  bias: ArrayLike<number> | null = null,
): ConvRef {
  const [n, h, w, ci] = xs;
  const [kh, kw, , co] = ks;
  const py = tfPad(h, kh, win.sh, win.dh, win.padding);
  const px = tfPad(w, kw, win.sw, win.dw, win.padding);
  const ho = py.out, wo = px.out;
  const y = new Float64Array(n * ho * wo * co);
  const abs = new Float64Array(y.length);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let o = 0; o < co; o++) {
          let s = bias ? bias[o] : 0, a = bias ? Math.abs(bias[o]) : 0;
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * win.sh + ky * win.dh - py.before;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kw; kx++) {
              const ix = ox * win.sw + kx * win.dw - px.before;
              if (ix < 0 || ix >= w) continue;
              for (let c = 0; c < ci; c++) {
                const p = x[((b * h + iy) * w + ix) * ci + c] *
                  k[((ky * kw + kx) * ci + c) * co + o];
                s += p;
                a += Math.abs(p);
              }
            }
          }
          const i = ((b * ho + oy) * wo + ox) * co + o;
          y[i] = s;
          abs[i] = a;
        }
      }
    }
  }
  return { y, abs, shape: [n, ho, wo, co] };
}

/** The gradients of Σ conv2d(x, k)·dy: dx, dk and db, each with Σ|terms| per element. */
export interface ConvGradRef {
  dx: Float64Array;
  dxAbs: Float64Array;
  dk: Float64Array;
  dkAbs: Float64Array;
  db: Float64Array;
  dbAbs: Float64Array;
}

/** The backward pass of {@linkcode conv2dRef} for the output gradient dy. */
export function conv2dGradRef(
  x: ArrayLike<number>,
  xs: readonly number[],
  k: ArrayLike<number>,
  ks: readonly number[],
  win: Window,
  dy: ArrayLike<number>,
): ConvGradRef {
  const [n, h, w, ci] = xs;
  const [kh, kw, , co] = ks;
  const py = tfPad(h, kh, win.sh, win.dh, win.padding);
  const px = tfPad(w, kw, win.sw, win.dw, win.padding);
  const ho = py.out, wo = px.out;
  const dx = new Float64Array(n * h * w * ci), dxAbs = new Float64Array(dx.length);
  const dk = new Float64Array(kh * kw * ci * co), dkAbs = new Float64Array(dk.length);
  const db = new Float64Array(co), dbAbs = new Float64Array(co);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let o = 0; o < co; o++) {
          const g = dy[((b * ho + oy) * wo + ox) * co + o];
          db[o] += g;
          dbAbs[o] += Math.abs(g);
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * win.sh + ky * win.dh - py.before;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kw; kx++) {
              const ix = ox * win.sw + kx * win.dw - px.before;
              if (ix < 0 || ix >= w) continue;
              for (let c = 0; c < ci; c++) {
                const xi = ((b * h + iy) * w + ix) * ci + c;
                const ki = ((ky * kw + kx) * ci + c) * co + o;
                dx[xi] += g * k[ki];
                dxAbs[xi] += Math.abs(g * k[ki]);
                dk[ki] += g * x[xi];
                dkAbs[ki] += Math.abs(g * x[xi]);
              }
            }
          }
        }
      }
    }
  }
  return { dx, dxAbs, dk, dkAbs, db, dbAbs };
}

/** Pooling results: y, and for max pooling the flat input index each output came from. */
export interface PoolRef {
  y: Float64Array;
  shape: [number, number, number, number];
  /** Max pooling: the first maximum's flat input index; average pooling: the divisor. */
  arg: Float64Array;
}

/**
 * max or average pooling of x [n,h,w,c] with window [ph, pw], strides, TensorFlow padding; average
 * pooling divides by the number of window elements inside the input; max pooling keeps the first
 * maximum in row-major window order.
 */
export function pool2dRef(
  kind: "max" | "avg",
  x: ArrayLike<number>,
  xs: readonly number[],
  ph: number,
  pw: number,
  sh: number,
  sw: number,
  padding: "same" | "valid",
): PoolRef {
  const [n, h, w, c] = xs;
  const py = tfPad(h, ph, sh, 1, padding);
  const px = tfPad(w, pw, sw, 1, padding);
  const ho = py.out, wo = px.out;
  const y = new Float64Array(n * ho * wo * c);
  const arg = new Float64Array(y.length);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity, at = -1, s = 0, cnt = 0;
          for (let ky = 0; ky < ph; ky++) {
            const iy = oy * sh + ky - py.before;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < pw; kx++) {
              const ix = ox * sw + kx - px.before;
              if (ix < 0 || ix >= w) continue;
              const i = ((b * h + iy) * w + ix) * c + ch;
              if (x[i] > best) {
                best = x[i];
                at = i;
              }
              s += x[i];
              cnt++;
            }
          }
          const o = ((b * ho + oy) * wo + ox) * c + ch;
          y[o] = kind === "max" ? best : s / cnt;
          arg[o] = kind === "max" ? at : cnt;
        }
      }
    }
  }
  return { y, shape: [n, ho, wo, c], arg };
}

/** The gradient of Σ pool2d(x)·dy with respect to x. */
export function pool2dGradRef(
  kind: "max" | "avg",
  x: ArrayLike<number>,
  xs: readonly number[],
  ph: number,
  pw: number,
  sh: number,
  sw: number,
  padding: "same" | "valid",
  dy: ArrayLike<number>,
): Float64Array {
  const [n, h, w, c] = xs;
  const r = pool2dRef(kind, x, xs, ph, pw, sh, sw, padding);
  const [, ho, wo] = r.shape;
  const py = tfPad(h, ph, sh, 1, padding);
  const px = tfPad(w, pw, sw, 1, padding);
  const dx = new Float64Array(n * h * w * c);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let ch = 0; ch < c; ch++) {
          const o = ((b * ho + oy) * wo + ox) * c + ch;
          if (kind === "max") {
            dx[r.arg[o]] += dy[o];
            continue;
          }
          for (let ky = 0; ky < ph; ky++) {
            const iy = oy * sh + ky - py.before;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < pw; kx++) {
              const ix = ox * sw + kx - px.before;
              if (ix < 0 || ix >= w) continue;
              dx[((b * h + iy) * w + ix) * c + ch] += dy[o] / r.arg[o];
            }
          }
        }
      }
    }
  }
  return dx;
}

/** Batch normalisation over all axes but the last, in float64. */
export interface BatchNormRef {
  y: Float64Array;
  mean: Float64Array;
  /** The biased variance (divided by the count). */
  variance: Float64Array;
}

/**
 * y = gamma·(x − mean)/√(var + eps) + beta with the batch's mean and biased variance (training),
 * or with the given statistics (inference).
 */
export function batchNormRef(
  x: ArrayLike<number>,
  c: number,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  eps: number,
  stats: { mean: ArrayLike<number>; variance: ArrayLike<number> } | null,
): BatchNormRef {
  const rows = x.length / c;
  const mean = new Float64Array(c), variance = new Float64Array(c);
  if (stats) {
    mean.set(Array.from(stats.mean));
    variance.set(Array.from(stats.variance));
  } else {
    for (let r = 0; r < rows; r++) for (let j = 0; j < c; j++) mean[j] += x[r * c + j];
    for (let j = 0; j < c; j++) mean[j] /= rows;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < c; j++) variance[j] += (x[r * c + j] - mean[j]) ** 2;
    }
    for (let j = 0; j < c; j++) variance[j] /= rows;
  }
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) {
      const i = r * c + j;
      y[i] = gamma[j] * (x[i] - mean[j]) / Math.sqrt(variance[j] + eps) + beta[j];
    }
  }
  return { y, mean, variance };
}
