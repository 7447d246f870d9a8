// Element-wise binary ops with NumPy broadcasting. The prefix defines `alias T` and
// `fn pow_op(a: T, b: T) -> T`. OP: 0 add  1 sub  2 mul  3 div  4 maximum  5 minimum  6 pow
// 7 greater  8 greaterEqual  9 less  10 lessEqual  11 equal  12 notEqual (comparisons give 1 or 0
// in the operands' dtype).
// MODE: 0 same shape  1 b is a scalar  2 a is a scalar  3 general (strides per output dim;
// a stride of 0 broadcasts). Shapes arrive with adjacent dims merged, so rank is small.
override OP: u32 = 0u;
override MODE: u32 = 0u;

struct Params {
  n: u32,
  stride: u32,
  rank: u32,
  _pad: u32,
  shape: array<vec4<u32>, 2>,
  sa: array<vec4<u32>, 2>,
  sb: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

fn apply(u: T, v: T) -> T {
  switch OP {
    case 0u: { return u + v; }
    case 1u: { return u - v; }
    case 2u: { return u * v; }
    case 3u: { return u / v; }
    case 4u: { return max(u, v); }
    case 5u: { return min(u, v); }
    case 6u: { return pow_op(u, v); }
    case 7u: { return select(T(0), T(1), u > v); }
    case 8u: { return select(T(0), T(1), u >= v); }
    case 9u: { return select(T(0), T(1), u < v); }
    case 10u: { return select(T(0), T(1), u <= v); }
    case 11u: { return select(T(0), T(1), u == v); }
    case 12u: { return select(T(0), T(1), u != v); }
    default: { return u; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  switch MODE {
    case 0u: { y[i] = apply(a[i], b[i]); }
    case 1u: { y[i] = apply(a[i], b[0]); }
    case 2u: { y[i] = apply(a[0], b[i]); }
    default: {
      var rem = i;
      var ia = 0u;
      var ib = 0u;
      for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let q = u32(d) >> 2u;
        let r = u32(d) & 3u;
        let size = p.shape[q][r];
        let c = rem % size;
        rem = rem / size;
        ia += c * p.sa[q][r];
        ib += c * p.sb[q][r];
      }
      y[i] = apply(a[ia], b[ib]);
    }
  }
}
