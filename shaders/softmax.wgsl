// Softmax and log-softmax along one axis, forward and backward, with the row maximum subtracted
// before exp so that no logit overflows. The tensor is seen as [outer, A, inner]: row r = (o, i)
// holds the A elements at o·A·inner + a·inner + i (inner = 1 when the axis is the last one).
// LOG: 0 softmax, 1 log-softmax.
// Entry points: `fwd`/`bwd`, one invocation per row; `fwd_wg`/`bwd_wg`, one workgroup of 64 per
// row with tree reductions in workgroup memory (long rows, few of them).
// Backward reads the forward output y and its gradient dy:
//   softmax:     dx = y · (dy − Σ dy·y)
//   log-softmax: dx = dy − exp(y) · Σ dy
override LOG: u32 = 0u;

struct Params {
  rows: u32,
  a: u32,      // the axis's length
  inner: u32,  // elements after the axis
  stride: u32, // rows (fwd/bwd) or workgroups (fwd_wg/bwd_wg) per grid row
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>; // forward: the input; backward: y
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>; // backward only

/** The first element of row r. */
fn row_base(r: u32) -> u32 {
  let o = r / p.inner;
  let i = r - o * p.inner;
  return o * p.a * p.inner + i;
}

@compute @workgroup_size(64)
fn fwd(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.rows) {
    return;
  }
  let base = row_base(r);
  let s = p.inner;
  var m = x[base];
  for (var j = 1u; j < p.a; j++) {
    m = max(m, x[base + j * s]);
  }
  var sum = 0.0;
  for (var j = 0u; j < p.a; j++) {
    sum += exp(x[base + j * s] - m);
  }
  if (LOG == 1u) {
    let ls = log(sum);
    for (var j = 0u; j < p.a; j++) {
      let k = base + j * s;
      out[k] = (x[k] - m) - ls;
    }
  } else {
    for (var j = 0u; j < p.a; j++) {
      let k = base + j * s;
      out[k] = exp(x[k] - m) / sum;
    }
  }
}

@compute @workgroup_size(64)
fn bwd(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.rows) {
    return;
  }
  let base = row_base(r);
  let s = p.inner;
  var acc = 0.0;
  if (LOG == 1u) {
    for (var j = 0u; j < p.a; j++) {
      acc += dy[base + j * s];
    }
    for (var j = 0u; j < p.a; j++) {
      let k = base + j * s;
      out[k] = dy[k] - exp(x[k]) * acc;
    }
  } else {
    for (var j = 0u; j < p.a; j++) {
      let k = base + j * s;
      acc += dy[k] * x[k];
    }
    for (var j = 0u; j < p.a; j++) {
      let k = base + j * s;
      out[k] = x[k] * (dy[k] - acc);
    }
  }
}

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

/** The maximum (op 0) or sum (op 1) of v over the workgroup; every invocation gets it. */
fn wg_reduce(t: u32, v: f32, op: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h >> 1u) {
    if (t < h) {
      red[t] = select(red[t] + red[t + h], max(red[t], red[t + h]), op == 0u);
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(64)
fn fwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = wid.x + wid.y * p.stride;
  if (r >= p.rows) {
    return;
  }
  let base = row_base(r);
  let s = p.inner;
  var m = x[base];
  for (var j = t; j < p.a; j += WG) {
    m = max(m, x[base + j * s]);
  }
  m = wg_reduce(t, m, 0u);
  var sum = 0.0;
  for (var j = t; j < p.a; j += WG) {
    sum += exp(x[base + j * s] - m);
  }
  sum = wg_reduce(t, sum, 1u);
  if (LOG == 1u) {
    let ls = log(sum);
    for (var j = t; j < p.a; j += WG) {
      let k = base + j * s;
      out[k] = (x[k] - m) - ls;
    }
  } else {
    for (var j = t; j < p.a; j += WG) {
      let k = base + j * s;
      out[k] = exp(x[k] - m) / sum;
    }
  }
}

@compute @workgroup_size(64)
fn bwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = wid.x + wid.y * p.stride;
  if (r >= p.rows) {
    return;
  }
  let base = row_base(r);
  let s = p.inner;
  var acc = 0.0;
  for (var j = t; j < p.a; j += WG) {
    let k = base + j * s;
    acc += select(dy[k] * x[k], dy[k], LOG == 1u);
  }
  acc = wg_reduce(t, acc, 1u);
  for (var j = t; j < p.a; j += WG) {
    let k = base + j * s;
    if (LOG == 1u) {
      out[k] = dy[k] - exp(x[k]) * acc;
    } else {
      out[k] = x[k] * (dy[k] - acc);
    }
  }
}
