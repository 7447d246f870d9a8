// Optimizer updates over a flat parameter arena (src/optim/optimizers.ts). The update of a vec4
// and its per-step scalars are in shaders/optim_update.wgsl, which is prepended.
//
// `main` is the fused update. The arena is a sequence of blocks of 256 elements (64 vec4s); every
// parameter starts on a block, so a block belongs to one parameter. A workgroup of 64 invocations
// covers 16 blocks, one vec4 of each per invocation (on llvmpipe the per-invocation work of
// `step_scalars` costs as much as 16 elements, so fewer, longer invocations pay; 16 measured
// faster than 4 and 64). Each invocation clips its gradients, applies weight decay, updates the
// parameters and the optimizer state, and clears the gradients unless CLEAR is off (a store per
// element, ~30% of the update on llvmpipe, saved when the caller overwrites every gradient).
// `sumsq` runs first when a norm is needed (clipnorm, globalClipnorm): one workgroup per parameter
// writes the sum of squares of its gradient.
//
// Everything that changes from step to step comes from `ctl`, never from the uniform block, so the
// same recorded dispatch can be replayed: each invocation keeps its own copy of the step counter
// (Keras's `iterations`), reads it, computes the scheduled learning rate and Adam's bias
// correction from it, and writes it back incremented. No word is shared between invocations, so
// there is no race and no barrier (on llvmpipe a barrier, or work done by one invocation for its
// workgroup, cost more than the update itself).
//
// ctl (32-bit words; f32 values stored as their bits):
//   [0, 256)        hyperparameters (H_*) and the piecewise-constant table (PW_TABLE)
//   [256, +nseg)    per parameter: flags (bit 0: weight decay applies)
//   [.., +nseg)     per parameter: first element
//   [.., +nseg)     per parameter: padded length in elements
//   [.., +nseg)     per parameter: sum of squares of the gradient (written by `sumsq`)
//   [.., +blocks)   per block: its parameter
//   [.., +ninv)     per invocation of `main`: step counter
//
// A compiled training step may update a dense layer's kernel in the epilogue of the matmul that
// computes its gradient (shaders/matmul.wgsl with this update prepended: the gradient is never
// stored); its `main` then runs with SKIP over the other parameters' blocks. The epilogue reads
// invocation 0's step counter, which `main` increments after it in the same step.

override CLEAR: bool = true; // clear the gradients (off when every step overwrites them all)
override SKIP: bool = false; // update only the blocks listed in p (see `update_listed`)

const WG: u32 = 64u; // invocations per workgroup
const VB: u32 = 64u; // vec4s per block (256 elements)
const BPW: u32 = 16u; // blocks per workgroup

struct Params {
  blocks: u32, // blocks of 256 elements
  stride: u32, // invocations per grid row (2-D grid for large arenas)
  nseg: u32, // parameters
  ninv: u32, // invocations of `main` (workgroups * WG)
  // SKIP (see `update_listed`): blocks in p.list, invocations launched, the step's first chunk.
  list_len: u32,
  launched: u32,
  first: u32,
  _pad: u32,
  list: array<vec4<u32>, 256>,
}

@group(0) @binding(0) var<storage, read_write> ctl: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> s0: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> s1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> s2: array<vec4<f32>>;

// The global-norm clip's factor of the gradients (CLIP 3): Keras's
// clip_norm * min(1 / norm, 1 / clip_norm), NaN when the norm is not finite.
fn global_scale() -> f32 {
  let seg_norm = SEG_BASE + 3u * p.nseg;
  var total = 0.0;
  for (var k = 0u; k < p.nseg; k++) {
    total += hf(seg_norm + k);
  }
  let c = hf(H_CLIP);
  if ((bitcast<u32>(total) & 0x7f800000u) == 0x7f800000u) {
    return bitcast<f32>(0x7fc00000u);
  } else if (total == 0.0) {
    return 1.0;
  }
  return c * min(1.0 / sqrt(total), 1.0 / c);
}

// One vec4 of the arena: element 4i..4i+3 of parameter `seg`.
fn update(i: u32, seg: u32, st: Step, scale: f32) {
  var gi = g[i];
  if (CLIP == 2u) {
    // Keras: g * clipnorm / max(norm, clipnorm)
    let c = st.clip;
    gi = (gi * c) / max(sqrt(hf(SEG_BASE + 3u * p.nseg + seg)), c);
  } else if (CLIP == 3u) {
    gi = gi * scale;
  }
  var s: Slots;
  if (slot_used(0u)) {
    s.s0 = s0[i];
  }
  if (slot_used(1u)) {
    s.s1 = s1[i];
  }
  if (slot_used(2u)) {
    s.s2 = s2[i];
  }
  let u = apply_update(gi, w[i], s, DECAY && (ctl[SEG_BASE + seg] & 1u) != 0u, st);
  if (slot_used(0u)) {
    s0[i] = u.s.s0;
  }
  if (slot_used(1u)) {
    s1[i] = u.s.s1;
  }
  if (slot_used(2u)) {
    s2[i] = u.s.s2;
  }
  w[i] = u.w;
  if (CLEAR) {
    g[i] = vec4(0.0);
  }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let inv = gid.x + gid.y * p.stride;
  if (inv >= select(p.ninv, p.launched, SKIP)) {
    return;
  }
  let wg = inv / WG;
  let lane = inv % WG;
  let block_seg = SEG_BASE + 4u * p.nseg;
  let counter = block_seg + p.blocks + inv;
  if (SKIP) {
    update_listed(inv, block_seg);
    return;
  }
  let t = ctl[counter];
  ctl[counter] = t + 1u;
  let st = step_scalars(t);
  var scale = 1.0;
  if (CLIP == 3u) {
    scale = global_scale();
  }
  if (inv == 0u) {
    ctl[O_LR] = bitcast<u32>(st.lr);
  }
  for (var k = 0u; k < BPW; k++) {
    let block = wg * BPW + k;
    if (block < p.blocks) {
      update(block * VB + lane, ctl[block_seg + block], st, scale);
    }
  }
}

// SKIP: a compiled step whose dense kernels were updated in their gradient products' epilogue
// updates only the blocks in p.list (their parameters' other blocks are not visited: on llvmpipe a
// block skipped by a branch still costs a good part of its update). p.launched invocations run; with
// p.first, invocation j increments the step counters j, j + launched, … (every counter once per
// step, as the full dispatch does); the chunks after the first read the counter less one.
fn update_listed(inv: u32, block_seg: u32) {
  let counters = block_seg + p.blocks;
  var t = ctl[counters + inv];
  if (p.first == 1u) {
    for (var c = inv; c < p.ninv; c += p.launched) {
      ctl[counters + c] = ctl[counters + c] + 1u;
    }
  } else {
    t = t - 1u;
  }
  let st = step_scalars(t);
  if (inv == 0u && p.first == 1u) {
    ctl[O_LR] = bitcast<u32>(st.lr);
  }
  let lane = inv % WG;
  for (var k = 0u; k < BPW; k++) {
    let e = (inv / WG) * BPW + k;
    if (e < p.list_len) {
      let block = p.list[e >> 2u][e & 3u];
      update(block * VB + lane, ctl[block_seg + block], st, 1.0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sums of squares of each parameter's gradient, for clipnorm and globalClipnorm.

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn sumsq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let seg = wid.x;
  if (seg >= p.nseg) {
    return;
  }
  let start = ctl[SEG_BASE + p.nseg + seg] / 4u;
  let len = ctl[SEG_BASE + 2u * p.nseg + seg] / 4u;
  var acc = vec4(0.0);
  for (var k = li; k < len; k += WG) {
    let v = g[start + k];
    acc = fma(v, v, acc);
  }
  partial[li] = (acc.x + acc.y) + (acc.z + acc.w);
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      partial[li] += partial[li + s];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    ctl[SEG_BASE + 3u * p.nseg + seg] = bitcast<u32>(partial[0]);
  }
}
