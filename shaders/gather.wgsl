// Batch gather: out[b, j] = f(src[row(b) * F + j]) for b < batch, j < F, where
// row(b) = perm[step[3] + b] (the shuffled order; step[3] is the batch's first position, written
// once per step; step[0..2] are the random state that dropout reads). MODE 0: src holds bytes (4 per u32 word) and f(v) = v·scale + shift, giving f32;
// MODE 1: src holds 32-bit values copied as they are (T: f32, i32 or u32).
// MODE 2: bytes as in MODE 0 with rows a multiple of 4 bytes long: one invocation converts a whole
// word (four bytes) into four outputs, so a byte is read once per word instead of once per byte.
override MODE: u32 = 0u;

struct Params {
  n: u32,       // batch · F (MODE 2: batch · F / 4)
  stride: u32,
  features: u32,
  rows: u32,    // rows in src, for bounds checks
  scale: f32,
  shift: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> perm: array<u32>;
@group(0) @binding(2) var<storage, read> step: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  if (MODE == 2u) {
    let words = p.features >> 2u;
    let b = i / words;
    let j = i - b * words;
    let row = min(perm[step[3] + b], p.rows - 1u);
    let v = src[row * words + j];
    let o = i * 4u;
    out[o] = T(f32(v & 0xffu) * p.scale + p.shift);
    out[o + 1u] = T(f32((v >> 8u) & 0xffu) * p.scale + p.shift);
    out[o + 2u] = T(f32((v >> 16u) & 0xffu) * p.scale + p.shift);
    out[o + 3u] = T(f32(v >> 24u) * p.scale + p.shift);
    return;
  }
  let b = i / p.features;
  let j = i - b * p.features;
  let row = min(perm[step[3] + b], p.rows - 1u);
  let k = row * p.features + j;
  if (MODE == 0u) {
    let byte = (src[k >> 2u] >> (8u * (k & 3u))) & 0xffu;
    out[i] = T(f32(byte) * p.scale + p.shift);
  } else {
    out[i] = bitcast<T>(src[k]);
  }
}
