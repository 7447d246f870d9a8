// Element-wise parts of batch normalisation over the last axis (C channels) of a [R, C] tensor:
// MODE 0, forward:   y  = (x − mean[c])·s[c]·γ[c] + β[c]
// MODE 1, gradient:  dx = γ[c]·s[c]·(dy − Σdy[c]/R − x̂·Σ(dy·x̂)[c]/R),  x̂ = (x − mean[c])·s[c]
//                    (training: the batch statistics depend on x), or
// MODE 2, gradient:  dx = γ[c]·s[c]·dy (inference: the moving statistics are constants).
// s[c] is 1/√(var + ε): read from `scale` as stored (training: the statistics kernel stores it),
// or computed from the variance stored there (INV_STD false: inference with the moving variance).
override MODE: u32 = 0u;
override INV_STD: bool = true;

struct Params {
  total: u32,
  c: u32,
  stride: u32,
  eps: f32,
  inv_rows: f32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
// MODE 0: β; MODE 1, 2: dy.
@group(0) @binding(6) var<storage, read> other: array<f32>;
// MODE 1: Σdy and Σdy·x̂ per channel; otherwise any buffers (not read).
@group(0) @binding(7) var<storage, read> sum_dy: array<f32>;
@group(0) @binding(8) var<storage, read> sum_dyx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.total) {
    return;
  }
  let c = i % p.c;
  let s = select(inverseSqrt(scale[c] + p.eps), scale[c], INV_STD);
  let g = gamma[c];
  switch MODE {
    case 0u: {
      out[i] = (x[i] - mean[c]) * s * g + other[c];
    }
    case 1u: {
      let xh = (x[i] - mean[c]) * s;
      out[i] = g * s * (other[i] - sum_dy[c] * p.inv_rows - xh * sum_dyx[c] * p.inv_rows);
    }
    default: {
      out[i] = g * s * other[i];
    }
  }
}
