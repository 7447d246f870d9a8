// Batch gather: out[b, j] = f(src[row(b) * F + j]) for b < batch, j < F, where
// row(b) = perm[step[3] + b] (the shuffled order; step[3] is the batch's first position, written
// once per step; step[0..2] are the random state that dropout reads).
// A set larger than one storage binding comes in chunks, one dispatch each: src then holds rows
// [first, first + count) from its word 0, and rows of the batch outside it are left alone.
// MODE 0: src holds bytes (4 per u32 word) and f(v) = v·scale + shift, giving f32;
// MODE 1: src holds 32-bit values copied as they are (T: f32, i32 or u32).
// Bytes in rows a multiple of 4 bytes long take `main_words` instead: one invocation converts
// whole words (four bytes each) into four outputs, so a byte is read once per word.
override MODE: u32 = 0u;

struct Params {
  n: u32,       // invocations: batch · F (main_words: batch · F / (4 · WPI))
  stride: u32,
  features: u32,
  rows: u32,    // rows in the whole set, for bounds checks
  scale: f32,
  shift: f32,
  first: u32,   // the first row in src
  count: u32,   // rows in src
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> perm: array<u32>;
@group(0) @binding(2) var<storage, read> step: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;
@group(0) @binding(4) var<uniform> p: Params;

// `main_words`: MODE 2's work with vector stores, WPI words (4 × WPI outputs) per invocation, and
// the row looked up once per invocation (rows are a multiple of 4·WPI bytes long). On llvmpipe
// every storage access instruction costs a loop over the SIMD lanes, so one vec4 store instead
// of four scalar ones, and one row lookup per WPI words, are what make it fast.
override WPI: u32 = 1u;

@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main_words(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride; // p.n: batch · F / (4 · WPI)
  if (i >= p.n) {
    return;
  }
  let words = p.features >> 2u;
  let first = i * WPI;
  let b = first / words;
  let j = first - b * words;
  let row = min(perm[step[3] + b], p.rows - 1u) - p.first;
  if (row >= p.count) {
    return; // in another chunk (unsigned: rows before `first` wrap around)
  }
  let base = row * words + j;
  for (var k = 0u; k < WPI; k++) {
    let v = src[base + k];
    let bytes = vec4<f32>(vec4(v & 0xffu, (v >> 8u) & 0xffu, (v >> 16u) & 0xffu, v >> 24u));
    out4[first + k] = bytes * p.scale + p.shift;
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  let b = i / p.features;
  let j = i - b * p.features;
  let row = min(perm[step[3] + b], p.rows - 1u) - p.first;
  if (row >= p.count) {
    return;
  }
  let k = row * p.features + j;
  if (MODE == 0u) {
    let byte = (src[k >> 2u] >> (8u * (k & 3u))) & 0xffu;
    out[i] = T(f32(byte) * p.scale + p.shift);
  } else {
    out[i] = bitcast<T>(src[k]);
  }
}
