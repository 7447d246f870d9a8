// Element-wise parts of batch normalisation over the last axis (C channels) of a [R, C] tensor:
// MODE 0, forward:   y  = (x − mean[c])·s[c]·γ[c] + β[c]
// MODE 1, gradient:  dx = γ[c]·s[c]·(dy − Σdy[c]/R − x̂·Σ(dy·x̂)[c]/R),  x̂ = (x − mean[c])·s[c]
//                    (training: the batch statistics depend on x), or
// MODE 2, gradient:  dx = γ[c]·s[c]·dy (inference: the moving statistics are constants).
// s[c] is 1/√(var + ε): read from `scale` as stored (training: the statistics kernel stores it),
// or computed from the variance stored there (INV_STD false: inference with the moving variance).
//
// The same blocks as shaders/batchnorm_reduce.wgsl: workgroup (bx, by) takes rows bx·p.block … and
// the channel groups (W channels as one V) by·GW …; invocation l takes group l % GW and every L-th
// row of the block from l / GW. The per-channel coefficients are read once per invocation; the
// loop does one V load (two for a gradient) and one V store per row. The WGSL prefix
// (src/ops/batchnorm.ts) defines `alias V`, `const GW`, `const L` and `const WG = GW·L`.
override MODE: u32 = 0u;
override INV_STD: bool = true;

struct Params {
  rows: u32,
  // C / W
  groups: u32,
  block: u32,
  eps: f32,
  inv_rows: f32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read_write> out: array<V>;
@group(0) @binding(3) var<storage, read> mean: array<V>;
@group(0) @binding(4) var<storage, read> scale: array<V>;
@group(0) @binding(5) var<storage, read> gamma: array<V>;
// MODE 0: β (per channel); MODE 1, 2: dy (per element).
@group(0) @binding(6) var<storage, read> other: array<V>;
// MODE 1: Σdy and Σdy·x̂ per channel; otherwise any buffers (not read).
@group(0) @binding(7) var<storage, read> sum_dy: array<V>;
@group(0) @binding(8) var<storage, read> sum_dyx: array<V>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let k = wg.y * GW + l % GW;
  if (k >= p.groups) {
    return;
  }
  let r0 = wg.x * p.block;
  let step = L * p.groups;
  let start = (r0 + l / GW) * p.groups + k;
  let end = min(r0 + p.block, p.rows) * p.groups;
  let s = select(inverseSqrt(scale[k] + p.eps), scale[k], INV_STD);
  let g = gamma[k] * s;
  switch MODE {
    case 0u: {
      let m = mean[k];
      let b = other[k];
      for (var i = start; i < end; i += step) {
        out[i] = (x[i] - m) * g + b;
      }
    }
    case 1u: {
      let m = mean[k];
      let cb = -g * sum_dy[k] * p.inv_rows;
      let cx = -g * s * sum_dyx[k] * p.inv_rows;
      for (var i = start; i < end; i += step) {
        out[i] = g * other[i] + cx * (x[i] - m) + cb;
      }
    }
    default: {
      for (var i = start; i < end; i += step) {
        out[i] = g * other[i];
      }
    }
  }
}
