// Per-channel reductions of batch normalisation over the R = N·H·W rows of a [R, C] (NHWC) tensor:
// one workgroup of 64 invocations per channel; invocation i sums rows i, i + 64, …, and a tree in
// workgroup memory adds the 64 partial sums. Two passes: the first sums `first(row, c)`, the
// second `second(row, c, A)` given the first pass's total A (the batch variance needs the mean
// first: two passes are exact where E[x²] − E[x]² cancels), then `finish(c, A, B)` writes.
//
// The WGSL prefix defines the bindings (binding 0 is the uniform block `p`) and
//   const TWO_PASS: bool
//   fn first(i: u32, c: u32) -> vec2<f32>            the quantities of the first pass at row i
//   fn second(i: u32, c: u32, a: vec2<f32>) -> vec2<f32>
//   fn finish(c: u32, a: vec2<f32>, b: vec2<f32>)
// Uses (src/ops/batchnorm.ts): the batch statistics, (x, ·) then ((x − mean)², ·), finishing with
// mean, 1/√(var + ε) and the moving averages' update; and the gradient's sums, (dy, dy·x̂) in one
// pass, finishing with dβ and dγ.
struct Params {
  rows: u32,
  c: u32,
  eps: f32,
  momentum: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> part: array<vec2<f32>, 64>;

fn tree(l: u32) -> vec2<f32> {
  for (var s = 32u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (l < s) {
      part[l] += part[l + s];
    }
  }
  workgroupBarrier();
  let total = part[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) li: vec3<u32>) {
  let c = wg.x;
  let l = li.x;
  var s = vec2(0.0);
  for (var i = l; i < p.rows; i += 64u) {
    s += first(i, c);
  }
  part[l] = s;
  let a = tree(l);
  var b = vec2(0.0);
  if (TWO_PASS) {
    var t = vec2(0.0);
    for (var i = l; i < p.rows; i += 64u) {
      t += second(i, c, a);
    }
    part[l] = t;
    b = tree(l);
  }
  if (l == 0u) {
    finish(c, a, b);
  }
}
