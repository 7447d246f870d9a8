// Reductions over any set of axes. The input is seen as kept axes × reduced axes (adjacent axes of
// the same kind merged on the CPU); each output element reduces R = prod(reduced shape) inputs.
// The prefix defines `alias T` (input), `alias O` (output), `fn lowest() -> T`, `fn highest() -> T`
// and `fn finish_sum(v: T) -> O` (applies the mean's 1/R for floats).
// OP: 0 sum (and mean)  1 max  2 min  3 argmax  4 argmin (first occurrence wins ties).
// Entry points: `main`, one invocation per output (small R or many outputs); `main_wg`, one
// workgroup of 256 per output with a tree reduction in workgroup memory (large R, few outputs);
// `main_split`, `splits` workgroups per output, each reducing a chunk of R into a partial result
// (huge R, very few outputs; a second pass reduces the partials).
override OP: u32 = 0u;

struct Params {
  n_out: u32,
  stride: u32, // outputs per grid row (main) or workgroups per grid row (main_wg)
  r: u32,
  krank: u32,
  rrank: u32,
  scale: f32,
  chunk: u32,  // main_split: inputs per workgroup
  splits: u32, // main_split: workgroups per output
  kshape: array<vec4<u32>, 2>,
  kstride: array<vec4<u32>, 2>,
  rshape: array<vec4<u32>, 2>,
  rstride: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> y: array<O>;
@group(0) @binding(2) var<uniform> p: Params;

struct Acc {
  v: T,
  i: u32,
}

fn base_offset(o: u32) -> u32 {
  var rem = o;
  var off = 0u;
  for (var d = i32(p.krank) - 1; d >= 0; d--) {
    let q = u32(d) >> 2u;
    let s = u32(d) & 3u;
    let size = p.kshape[q][s];
    off += (rem % size) * p.kstride[q][s];
    rem = rem / size;
  }
  return off;
}

fn red_offset(r: u32) -> u32 {
  if (p.rrank == 1u) {
    return r * p.rstride[0][0];
  }
  var rem = r;
  var off = 0u;
  for (var d = i32(p.rrank) - 1; d >= 0; d--) {
    let q = u32(d) >> 2u;
    let s = u32(d) & 3u;
    let size = p.rshape[q][s];
    off += (rem % size) * p.rstride[q][s];
    rem = rem / size;
  }
  return off;
}

fn init() -> Acc {
  switch OP {
    case 1u, 3u: { return Acc(lowest(), 0xffffffffu); }
    case 2u, 4u: { return Acc(highest(), 0xffffffffu); }
    default: { return Acc(T(0), 0u); }
  }
}

fn combine(a: Acc, b: Acc) -> Acc {
  switch OP {
    case 1u: { return Acc(max(a.v, b.v), 0u); }
    case 2u: { return Acc(min(a.v, b.v), 0u); }
    case 3u: {
      if (b.v > a.v || (b.v == a.v && b.i < a.i)) {
        return b;
      }
      return a;
    }
    case 4u: {
      if (b.v < a.v || (b.v == a.v && b.i < a.i)) {
        return b;
      }
      return a;
    }
    default: { return Acc(a.v + b.v, 0u); }
  }
}

fn finish(a: Acc) -> O {
  switch OP {
    case 0u: { return finish_sum(a.v); }
    case 3u, 4u: { return O(a.i); }
    default: { return O(a.v); }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let o = g.x + g.y * p.stride;
  if (o >= p.n_out) {
    return;
  }
  let base = base_offset(o);
  var acc = init();
  for (var r = 0u; r < p.r; r++) {
    acc = combine(acc, Acc(x[base + red_offset(r)], r));
  }
  y[o] = finish(acc);
}

const WG: u32 = 256u;
var<workgroup> sv: array<T, WG>;
var<workgroup> si: array<u32, WG>;

fn tree_reduce(t: u32, acc: Acc) -> Acc {
  sv[t] = acc.v;
  si[t] = acc.i;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) {
      let c = combine(Acc(sv[t], si[t]), Acc(sv[t + s], si[t + s]));
      sv[t] = c.v;
      si[t] = c.i;
    }
    workgroupBarrier();
  }
  return Acc(sv[0], si[0]);
}

@compute @workgroup_size(256)
fn main_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let o = wid.x + wid.y * p.stride;
  if (o >= p.n_out) {
    return;
  }
  let base = base_offset(o);
  var acc = init();
  for (var r = t; r < p.r; r += WG) {
    acc = combine(acc, Acc(x[base + red_offset(r)], r));
  }
  let total = tree_reduce(t, acc);
  if (t == 0u) {
    y[o] = finish(total);
  }
}

@compute @workgroup_size(256)
fn main_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let w = wid.x + wid.y * p.stride;
  if (w >= p.n_out * p.splits) {
    return;
  }
  let o = w / p.splits;
  let start = (w % p.splits) * p.chunk;
  let end = min(p.r, start + p.chunk);
  let base = base_offset(o);
  var acc = init();
  for (var r = start + t; r < end; r += WG) {
    acc = combine(acc, Acc(x[base + red_offset(r)], r));
  }
  let total = tree_reduce(t, acc);
  if (t == 0u) {
    y[w] = finish(total);
  }
}
