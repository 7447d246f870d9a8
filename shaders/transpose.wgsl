// Permute: y[i] = x[offset(i)], where offset decomposes the output index over the output shape and
// weighs each coordinate by the input stride of the axis it came from. Rank at most 8.
struct Params {
  n: u32,
  stride: u32,
  rank: u32,
  _pad: u32,
  shape: array<vec4<u32>, 2>,   // output shape
  istride: array<vec4<u32>, 2>, // input stride for each output axis
}

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> y: array<T>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  var rem = i;
  var off = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let q = u32(d) >> 2u;
    let r = u32(d) & 3u;
    let size = p.shape[q][r];
    off += (rem % size) * p.istride[q][r];
    rem = rem / size;
  }
  y[i] = x[off];
}
