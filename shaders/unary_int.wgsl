// Element-wise unary ops on i32: 0 neg  1 abs  5 square  6 relu  14 sign (numbers as in unary.wgsl).
override OP: u32 = 0u;

struct Params {
  n: u32,
  stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<i32>;
@group(0) @binding(1) var<storage, read_write> y: array<i32>;
@group(0) @binding(2) var<uniform> p: Params;

fn apply(v: i32) -> i32 {
  switch OP {
    case 0u: { return -v; }
    case 1u: { return abs(v); }
    case 5u: { return v * v; }
    case 6u: { return max(v, 0); }
    case 14u: { return sign(v); }
    default: { return v; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  y[i] = apply(x[i]);
}
