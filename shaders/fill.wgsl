// Fill: every element of y gets the same 32-bit pattern (any dtype).
struct Params {
  n: u32,
  stride: u32, // invocations per grid row (2-D dispatch when n is large)
  bits: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  y[i] = p.bits;
}
