// Second pass of a row kernel (loss.wgsl, `reduce_part`) over many rows: one workgroup sums the
// partials [loss sum, correct, bad rows, 0] of `groups` workgroups in a fixed order and writes the
// reduced value. `main_acc` also adds [loss sum, correct, rows, 1] to an accumulator at `acc_at`.
// OUT: 0 the loss (NaN when a row was bad), 1 the correct count. MEAN: 1 divides by the rows.
override OUT: u32 = 0u;
override MEAN: u32 = 0u;

struct Params {
  groups: u32,
  rows: u32,
  acc_at: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;

const WG: u32 = 256u;
var<workgroup> s_loss: array<f32, WG>;
var<workgroup> s_hit: array<f32, WG>;
var<workgroup> s_bad: array<f32, WG>;

/** Reduces the partials; invocation 0 writes the result and returns [loss or NaN, correct]. */
fn finish(t: u32) -> vec2<f32> {
  var l = 0.0;
  var h = 0.0;
  var b = 0.0;
  for (var w = t; w < p.groups; w += WG) {
    l += part[w * 4u];
    h += part[w * 4u + 1u];
    b += part[w * 4u + 2u];
  }
  s_loss[t] = l;
  s_hit[t] = h;
  s_bad[t] = b;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k >> 1u) {
    if (t < k) {
      s_loss[t] += s_loss[t + k];
      s_hit[t] += s_hit[t + k];
      s_bad[t] += s_bad[t + k];
    }
    workgroupBarrier();
  }
  let loss = select(s_loss[0], bitcast<f32>(0x7fc00000u), s_bad[0] > 0.0);
  let v = select(loss, s_hit[0], OUT == 1u);
  if (t == 0u) {
    out[0] = select(v, v / f32(p.rows), MEAN == 1u && p.rows > 0u);
  }
  return vec2<f32>(loss, s_hit[0]);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  _ = finish(t);
}

@compute @workgroup_size(256)
fn main_acc(@builtin(local_invocation_index) t: u32) {
  let r = finish(t);
  if (t == 0u) {
    acc[p.acc_at] += r.x;
    acc[p.acc_at + 1u] += r.y;
    acc[p.acc_at + 2u] += f32(p.rows);
    acc[p.acc_at + 3u] += 1.0;
  }
}
