// The per-channel finish of batch normalisation's reductions (shaders/batchnorm_reduce.wgsl wrote
// per-block partials [blocks][T][C]; block b holds n_b = min(block, rows − b·block) rows): one
// invocation per channel, looping over the blocks.
//
// `stats`, `stats_update`: from each block's centre c_b (the mean of one of its tiles of rows),
// L_b = Σ(x − c_b) and Q_b = Σ(x − c_b)² (shaders/batchnorm_reduce.wgsl, MODE 0),
//   mean = c_0 + Σ_b (n_b·(c_b − c_0) + L_b) / R      (small terms: no sum of R·|mean|-sized values)
//   var  = Σ_b (Q_b + 2(c_b − mean)·L_b + n_b·(c_b − mean)²) / R   (= Σ(x − mean)² / R exactly)
// and write the mean and 1/√(var + ε); `stats_update` also updates the moving statistics in place
// as Keras 3 does: moving = moving·momentum + batch·(1 − momentum), with the biased variance.
// `grad`: Σdy and Σdy·x̂ (dβ and dγ) as sums of the blocks' partials.
struct Params {
  rows: u32,
  c: u32,
  block: u32,
  blocks: u32,
  eps: f32,
  momentum: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
// `stats`: mean and 1/√(var + ε); `grad`: Σdy and Σdy·x̂.
@group(0) @binding(2) var<storage, read_write> out_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> moving_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> moving_var: array<f32>;

fn rows_of(b: u32) -> f32 {
  return f32(min(p.block, p.rows - b * p.block));
}

// Writes the batch mean and 1/√(var + ε) of channel c; returns (mean, var).
fn finish_stats(c: u32) -> vec2<f32> {
  let stride = 3u * p.c;
  let c0 = partial[c];
  var t = 0.0;
  for (var b = 0u; b < p.blocks; b++) {
    let o = b * stride + c;
    t += rows_of(b) * (partial[o] - c0) + partial[o + p.c];
  }
  let m = c0 + t / f32(p.rows);
  var q = 0.0;
  for (var b = 0u; b < p.blocks; b++) {
    let o = b * stride + c;
    let d = partial[o] - m;
    q += partial[o + 2u * p.c] + d * (2.0 * partial[o + p.c] + rows_of(b) * d);
  }
  let v = max(q, 0.0) / f32(p.rows);
  out_a[c] = m;
  out_b[c] = inverseSqrt(v + p.eps);
  return vec2(m, v);
}

@compute @workgroup_size(64)
fn stats(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x < p.c) {
    finish_stats(gid.x);
  }
}

@compute @workgroup_size(64)
fn stats_update(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c < p.c) {
    let s = finish_stats(c);
    moving_mean[c] = moving_mean[c] * p.momentum + s.x * (1.0 - p.momentum);
    moving_var[c] = moving_var[c] * p.momentum + s.y * (1.0 - p.momentum);
  }
}

@compute @workgroup_size(64)
fn grad(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c < p.c) {
    var a = 0.0;
    var b = 0.0;
    for (var k = 0u; k < p.blocks; k++) {
      let o = 2u * k * p.c + c;
      a += partial[o];
      b += partial[o + p.c];
    }
    out_a[c] = a;
    out_b[c] = b;
  }
}
