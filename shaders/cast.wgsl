// Cast: y = conv(x), element by element. The prefix defines `alias S` (source), `alias D`
// (destination) and `fn conv(v: S) -> D`: float to integer rounds toward zero and saturates at the
// integer type's range (WGSL's own conversion stops at the largest integer that is an f32).
struct Params {
  n: u32,
  stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<S>;
@group(0) @binding(1) var<storage, read_write> y: array<D>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  y[i] = conv(x[i]);
}
