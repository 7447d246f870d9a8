// Row kernels: the losses and the accuracy metrics, computed per row of the last axis and reduced
// over the rows in the same launch. A loss also writes its gradient with respect to the
// predictions (scaled for the reduction) in the same pass, so a training step's loss and its
// backward cost one dispatch.
//
// The prefix defines:
//   alias L = i32 | u32 | f32  the targets' element type (class indices or dense targets)
//   const KIND: u32            0 sparse CE from logits    1 sparse CE from probabilities
//                              2 categorical CE (logits)   3 categorical CE (probabilities)
//                              4 binary CE from logits     5 binary CE from probabilities
//                              6 mean squared error        7 mean absolute error
//                              8 sparse categorical accuracy  9 categorical accuracy
//                              10 binary accuracy
//   const OUT: u32             0 the loss, 1 the correct count (metrics)
//   const MEAN: bool           divide the reduced value by the number of rows
//   const GRAD: bool           compute the gradient (put_grad writes it)
//   fn put_grad(i: u32, v: f32)           writes the gradient (a no-op when none is wanted)
//   fn add_acc(loss: f32, correct: f32)   adds [loss, correct, rows, 1] to the accumulator at acc_at
//                                         (a no-op without one)
// and the bindings after 3 (gradient, accumulator) that those functions use.
//
// Entry points: `per_row` (one invocation per row, writes each row's loss: reduction "none"),
// `reduce_one` (one workgroup loops over all rows and writes the reduced value), `reduce_part`
// (`groups` workgroups each write a partial [loss sum, correct, bad rows, 0]; loss_finish.wgsl
// reduces them).
//
// Keras semantics (keras/src/backend/tensorflow/nn.py): probabilities are clipped to [ε, 1 − ε]
// with ε = 1e-7 (as f32), and the clip passes the gradient only where ε ≤ p ≤ 1 − ε
// (TensorFlow's clip gradient). Categorical CE from probabilities divides by the row sum before
// clipping; sparse CE from probabilities clips and then normalises (TensorFlow feeds log(clip(p))
// to a softmax cross-entropy). A class index outside [0, C), or a categorical row of probabilities
// whose sum is not positive, makes the row "bad": its loss is NaN (and so is the reduced loss),
// its gradient zero and its prediction incorrect; no element outside the row is read.

struct Params {
  rows: u32,
  cols: u32,
  stride: u32,     // per_row: rows per grid row
  groups: u32,     // reduce_part: workgroups
  gscale: f32,     // gradient scale: 1/rows for a mean, times 1/cols for per-element losses
  smooth_mul: f32, // label smoothing: t' = t·smooth_mul + smooth_add
  smooth_add: f32,
  thresh: f32,     // binary accuracy: a prediction > thresh is class 1
  acc_at: u32,     // first of the four accumulator elements
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<L>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// The clip bounds by their bit patterns, so that no literal rounding is involved.
const EPS_BITS: u32 = 0x33d6bf95u;       // f32(1e-7)
const ONE_M_EPS_BITS: u32 = 0x3f7ffffeu; // f32(1 − 1e-7) = 1 − 2⁻²³
const NAN_BITS: u32 = 0x7fc00000u;

struct Row {
  loss: f32,
  correct: f32,
  bad: bool,
}

fn nan() -> f32 {
  return bitcast<f32>(NAN_BITS);
}

/** A sparse target as an unsigned index: negative i32 labels become huge, hence out of range. */
fn label(r: u32) -> u32 {
  return bitcast<u32>(tgt[r]);
}

/** The smoothed dense target. */
fn smoothed(i: u32) -> f32 {
  return f32(tgt[i]) * p.smooth_mul + p.smooth_add;
}

fn clip(v: f32) -> f32 {
  return clamp(v, bitcast<f32>(EPS_BITS), bitcast<f32>(ONE_M_EPS_BITS));
}

/** Where the clip passes the gradient (TensorFlow: not below the minimum, not above the maximum). */
fn in_clip(v: f32) -> bool {
  return v >= bitcast<f32>(EPS_BITS) && v <= bitcast<f32>(ONE_M_EPS_BITS);
}

/**
 * log(1 + x) for 0 ≤ x ≤ 1. Below 2⁻¹⁰ a four-term series (relative error < x⁴/5 < 2⁻⁴²), so that
 * tiny values keep their relative accuracy whatever `log` does near 1; above, log(1 + x).
 */
fn log1p_small(x: f32) -> f32 {
  if (x < 0.0009765625) {
    return x * (1.0 - x * (0.5 - x * (0.33333334 - x * 0.25)));
  }
  return log(1.0 + x);
}

/** 1 / (1 + e^−x) without overflow. */
fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) {
    return 1.0 / (1.0 + exp(-x));
  }
  let e = exp(x);
  return e / (1.0 + e);
}

/** Index of the row's largest prediction (the first on ties). */
fn argmax_pred(b: u32, c: u32) -> u32 {
  var m = pred[b];
  var am = 0u;
  for (var j = 1u; j < c; j++) {
    let v = pred[b + j];
    if (v > m) {
      m = v;
      am = j;
    }
  }
  return am;
}

/** Index of the row's largest target (the first on ties). */
fn argmax_target(b: u32, c: u32) -> u32 {
  var m = f32(tgt[b]);
  var am = 0u;
  for (var j = 1u; j < c; j++) {
    let v = f32(tgt[b + j]);
    if (v > m) {
      m = v;
      am = j;
    }
  }
  return am;
}

fn row_max(b: u32, c: u32) -> f32 {
  var m = pred[b];
  for (var j = 1u; j < c; j++) {
    m = max(m, pred[b + j]);
  }
  return m;
}

fn row_sum_exp(b: u32, c: u32, m: f32) -> f32 {
  var s = 0.0;
  for (var j = 0u; j < c; j++) {
    s += exp(pred[b + j] - m);
  }
  return s;
}

// Sparse categorical cross-entropy from logits: loss = (max − x_y) + log Σ exp(x − max);
// gradient softmax − onehot(y).
fn sparse_logits(r: u32) -> Row {
  let c = p.cols;
  let b = r * c;
  let y = label(r);
  let bad = y >= c;
  let yi = select(y, 0u, bad);
  let am = argmax_pred(b, c);
  let m = row_max(b, c);
  let s = row_sum_exp(b, c, m);
  let loss = (m - pred[b + yi]) + log(s);
  if (GRAD) {
    for (var j = 0u; j < c; j++) {
      var g = exp(pred[b + j] - m) / s;
      if (j == yi) {
        g -= 1.0;
      }
      put_grad(b + j, select(g * p.gscale, 0.0, bad));
    }
  }
  return Row(select(loss, nan(), bad), select(0.0, 1.0, am == y), bad);
}

// Sparse categorical cross-entropy from probabilities, as TensorFlow: c = clip(p), S = Σ c,
// loss = log S − log c_y; gradient [ε ≤ p ≤ 1−ε] · (1/S − onehot(y)/c).
fn sparse_probs(r: u32) -> Row {
  let c = p.cols;
  let b = r * c;
  let y = label(r);
  let bad = y >= c;
  let yi = select(y, 0u, bad);
  let am = argmax_pred(b, c);
  var s = 0.0;
  for (var j = 0u; j < c; j++) {
    s += clip(pred[b + j]);
  }
  let cy = clip(pred[b + yi]);
  let loss = log(s) - log(cy);
  if (GRAD) {
    for (var j = 0u; j < c; j++) {
      let v = pred[b + j];
      var g = 1.0 / s;
      if (j == yi) {
        g -= 1.0 / clip(v);
      }
      put_grad(b + j, select(0.0, g * p.gscale, in_clip(v) && !bad));
    }
  }
  return Row(select(loss, nan(), bad), select(0.0, 1.0, am == y), bad);
}

// Categorical cross-entropy from logits: loss = Σ t·(max − x + log Σ exp(x − max));
// gradient softmax·Σt − t (softmax − t for targets that sum to 1).
fn categorical_logits(r: u32) -> Row {
  let c = p.cols;
  let b = r * c;
  let am = argmax_pred(b, c);
  let at = argmax_target(b, c);
  let m = row_max(b, c);
  let s = row_sum_exp(b, c, m);
  let ls = log(s);
  var loss = 0.0;
  var tsum = 0.0;
  for (var j = 0u; j < c; j++) {
    let t = smoothed(b + j);
    loss += t * ((m - pred[b + j]) + ls);
    tsum += t;
  }
  if (GRAD) {
    for (var j = 0u; j < c; j++) {
      let g = exp(pred[b + j] - m) / s * tsum - smoothed(b + j);
      put_grad(b + j, g * p.gscale);
    }
  }
  return Row(loss, select(0.0, 1.0, am == at), false);
}

// Categorical cross-entropy from probabilities, as Keras: q = p / Σp, c = clip(q),
// loss = −Σ t·log c. With g = −t·[ε ≤ q ≤ 1−ε]/c, the gradient is (g − Σ g·q) / Σp.
fn categorical_probs(r: u32) -> Row {
  let c = p.cols;
  let b = r * c;
  let am = argmax_pred(b, c);
  let at = argmax_target(b, c);
  var s = 0.0;
  for (var j = 0u; j < c; j++) {
    s += pred[b + j];
  }
  // A row without probability mass has no loss (Keras's 0/0 gives NaN): report it as a bad row.
  let bad = !(s > 0.0);
  var loss = 0.0;
  var gq = 0.0;
  for (var j = 0u; j < c; j++) {
    let q = pred[b + j] / s;
    let t = smoothed(b + j);
    let cq = clip(q);
    loss -= t * log(cq);
    gq += select(0.0, -t / cq, in_clip(q)) * q;
  }
  if (GRAD) {
    for (var j = 0u; j < c; j++) {
      let q = pred[b + j] / s;
      let g = select(0.0, -smoothed(b + j) / clip(q), in_clip(q));
      put_grad(b + j, select((g - gq) / s * p.gscale, 0.0, bad));
    }
  }
  return Row(select(loss, nan(), bad), select(0.0, 1.0, am == at), bad);
}

/** Binary accuracy of one element: the thresholded prediction equals the (unsmoothed) target. */
fn binary_hit(i: u32) -> f32 {
  return select(0.0, 1.0, f32(tgt[i]) == select(0.0, 1.0, pred[i] > p.thresh));
}

// Binary cross-entropy, the mean over the row of the per-element losses.
// From logits: max(x, 0) − x·t + log(1 + e^−|x|); gradient sigmoid(x) − t.
// From probabilities: c = clip(p), −(t·log c + (1 − t)·log(1 − c)); gradient
// [ε ≤ p ≤ 1−ε] · ((1 − t)/(1 − c) − t/c).
fn binary(r: u32, logits: bool) -> Row {
  let c = p.cols;
  let b = r * c;
  var loss = 0.0;
  var hits = 0.0;
  for (var j = 0u; j < c; j++) {
    let i = b + j;
    let x = pred[i];
    let t = smoothed(i);
    hits += binary_hit(i);
    if (logits) {
      loss += (max(x, 0.0) - x * t) + log1p_small(exp(-abs(x)));
      put_grad(i, (sigmoid(x) - t) * p.gscale);
    } else {
      let cx = clip(x);
      loss -= t * log(cx) + (1.0 - t) * log(1.0 - cx);
      let g = (1.0 - t) / (1.0 - cx) - t / cx;
      put_grad(i, select(0.0, g * p.gscale, in_clip(x)));
    }
  }
  return Row(loss / f32(c), hits / f32(c), false);
}

// Mean squared error and mean absolute error over the row; gradients 2(p − t) and sign(p − t).
fn regression(r: u32, squared: bool) -> Row {
  let c = p.cols;
  let b = r * c;
  var loss = 0.0;
  for (var j = 0u; j < c; j++) {
    let i = b + j;
    let d = pred[i] - f32(tgt[i]);
    if (squared) {
      loss += d * d;
      put_grad(i, 2.0 * d * p.gscale);
    } else {
      loss += abs(d);
      put_grad(i, sign(d) * p.gscale);
    }
  }
  return Row(loss / f32(c), 0.0, false);
}

fn row(r: u32) -> Row {
  switch KIND {
    case 0u: { return sparse_logits(r); }
    case 1u: { return sparse_probs(r); }
    case 2u: { return categorical_logits(r); }
    case 3u: { return categorical_probs(r); }
    case 4u: { return binary(r, true); }
    case 5u: { return binary(r, false); }
    case 6u: { return regression(r, true); }
    case 7u: { return regression(r, false); }
    case 8u: {
      let y = label(r);
      let b = r * p.cols;
      return Row(0.0, select(0.0, 1.0, y < p.cols && argmax_pred(b, p.cols) == y), false);
    }
    case 9u: {
      let b = r * p.cols;
      return Row(0.0, select(0.0, 1.0, argmax_pred(b, p.cols) == argmax_target(b, p.cols)), false);
    }
    default: {
      let b = r * p.cols;
      var hits = 0.0;
      for (var j = 0u; j < p.cols; j++) {
        hits += binary_hit(b + j);
      }
      return Row(0.0, hits / f32(p.cols), false);
    }
  }
}

@compute @workgroup_size(256)
fn per_row(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.rows) {
    return;
  }
  let v = row(r);
  out[r] = select(v.loss, v.correct, OUT == 1u);
}

const WG: u32 = 256u;
var<workgroup> s_loss: array<f32, WG>;
var<workgroup> s_hit: array<f32, WG>;
var<workgroup> s_bad: array<f32, WG>;

struct Total {
  loss: f32,
  correct: f32,
  bad: f32,
}

/** Sums rows first, first + step, … below `rows`, then over the workgroup (a fixed tree). */
fn total_rows(t: u32, first: u32, step: u32) -> Total {
  var acc = Total(0.0, 0.0, 0.0);
  for (var r = first; r < p.rows; r += step) {
    let v = row(r);
    if (v.bad) {
      acc.bad += 1.0;
    } else {
      acc.loss += v.loss;
    }
    acc.correct += v.correct;
  }
  s_loss[t] = acc.loss;
  s_hit[t] = acc.correct;
  s_bad[t] = acc.bad;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h >> 1u) {
    if (t < h) {
      s_loss[t] += s_loss[t + h];
      s_hit[t] += s_hit[t + h];
      s_bad[t] += s_bad[t + h];
    }
    workgroupBarrier();
  }
  return Total(s_loss[0], s_hit[0], s_bad[0]);
}

@compute @workgroup_size(256)
fn reduce_one(@builtin(local_invocation_index) t: u32) {
  let tot = total_rows(t, t, WG);
  if (t == 0u) {
    let loss = select(tot.loss, nan(), tot.bad > 0.0);
    let v = select(loss, tot.correct, OUT == 1u);
    out[0] = select(v, v / f32(p.rows), MEAN && p.rows > 0u);
    add_acc(loss, tot.correct);
  }
}

@compute @workgroup_size(256)
fn reduce_part(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let tot = total_rows(t, wid.x * WG + t, p.groups * WG);
  if (t == 0u) {
    out[wid.x * 4u] = tot.loss;
    out[wid.x * 4u + 1u] = tot.correct;
    out[wid.x * 4u + 2u] = tot.bad;
    out[wid.x * 4u + 3u] = 0.0;
  }
}
