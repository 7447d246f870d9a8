// Optimizer updates over a flat parameter arena (src/optim/optimizers.ts).
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
override OPT: u32 = 0u; // 0 SGD, 1 Adam, 2 RMSprop, 3 Adagrad
override MOMENTUM: bool = false; // SGD and RMSprop: a momentum slot
override NESTEROV: bool = false; // SGD
override AMSGRAD: bool = false; // Adam
override CENTERED: bool = false; // RMSprop
override CLIP: u32 = 0u; // 0 none, 1 by value, 2 by each parameter's norm, 3 by the global norm
override DECAY: bool = false; // decoupled weight decay (Keras's `weight_decay`)
override CLEAR: bool = true; // clear the gradients (off when every step overwrites them all)

const WG: u32 = 64u; // invocations per workgroup
const VB: u32 = 64u; // vec4s per block (256 elements)
const BPW: u32 = 16u; // blocks per workgroup

const H_LR: u32 = 0u; // learning rate (constant), or the schedule's initial learning rate
const H_KIND: u32 = 1u; // 0 constant, 1 exponential decay, 2 piecewise constant, 3 cosine decay
const H_S0: u32 = 2u; // schedule parameters H_S0..H_S5 (see learning_rate)
const H_S1: u32 = 3u;
const H_S2: u32 = 4u;
const H_S3: u32 = 5u;
const H_S4: u32 = 6u;
const H_S5: u32 = 7u;
const H_BETA1: u32 = 8u; // Adam beta_1; SGD and RMSprop momentum
const H_BETA2: u32 = 9u; // Adam beta_2
const H_EPS: u32 = 10u;
const H_RHO: u32 = 11u; // RMSprop rho
const H_1MBETA1: u32 = 12u; // 1 - beta_1 (Adam), computed in float64 as Keras does
const H_1MBETA2: u32 = 13u; // 1 - beta_2 (Adam); 1 - rho (RMSprop)
const H_LNBETA1: u32 = 14u; // ln(beta_1), for beta_1^t
const H_LNBETA2: u32 = 15u; // ln(beta_2)
const H_WD: u32 = 16u; // weight decay
const H_CLIP: u32 = 17u; // clipvalue, clipnorm or global_clipnorm
const O_LR: u32 = 24u; // out: the learning rate of the last step (written by block 0)
const PW_TABLE: u32 = 32u; // piecewise: boundaries (u32), then values (f32)
const SEG_BASE: u32 = 256u;

struct Params {
  blocks: u32, // blocks of 256 elements
  stride: u32, // invocations per grid row (2-D grid for large arenas)
  nseg: u32, // parameters
  ninv: u32, // invocations of `main` (workgroups * WG)
}

@group(0) @binding(0) var<storage, read_write> ctl: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> s0: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> s1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> s2: array<vec4<f32>>;

fn hf(i: u32) -> f32 {
  return bitcast<f32>(ctl[i]);
}

// ---------------------------------------------------------------------------------------------
// Scalar functions accurate to about an ulp on every adapter (WGSL's exp allows 3 + 2|x| ulps and
// its cos an absolute 2^-11, too loose for learning rates and bias corrections).

const LN2_HI: f32 = 0.693145751953125; // 16 significant bits: k * LN2_HI is exact for |k| < 256
const LN2_LO: f32 = 1.42860682030941723212e-6;
const LOG2E: f32 = 1.44269504088896340736;
const PI: f32 = 3.14159265358979323846;

// e^x: x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^8 (remainder < 3e-10).
fn exp_acc(x: f32) -> f32 {
  if (x < -87.0) {
    return 0.0;
  }
  let xc = min(x, 88.0);
  let k = round(xc * LOG2E);
  let r = (xc - k * LN2_HI) - k * LN2_LO;
  let q = 1.0 + r * (1.0 + r * (1.0 / 2.0 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 +
    r * (1.0 / 720.0 + r * (1.0 / 5040.0 + r * (1.0 / 40320.0))))))));
  return ldexp(q, i32(k));
}

// e^x - 1 without cancellation near 0 (Taylor series to x^8 for |x| < 0.3, remainder < 2e-10).
fn expm1_acc(x: f32) -> f32 {
  if (abs(x) < 0.3) {
    return x * (1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0 +
      x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x * (1.0 / 40320.0))))))));
  }
  return exp_acc(x) - 1.0;
}

// cos(pi x) for x in [0, 1]: reduced to [0, 1/4] by symmetry (exactly), then Taylor series of cos
// or sin on |a| <= pi/4 (remainders < 2e-10).
fn cos_pi(x: f32) -> f32 {
  var sgn = 1.0;
  var y = clamp(x, 0.0, 1.0);
  if (y > 0.5) {
    y = 1.0 - y;
    sgn = -1.0;
  }
  if (y <= 0.25) {
    let a = y * PI;
    let a2 = a * a;
    return sgn * (1.0 + a2 * (-1.0 / 2.0 + a2 * (1.0 / 24.0 + a2 * (-1.0 / 720.0 +
      a2 * (1.0 / 40320.0 + a2 * (-1.0 / 3628800.0))))));
  }
  let a = (0.5 - y) * PI;
  let a2 = a * a;
  return sgn * a * (1.0 + a2 * (-1.0 / 6.0 + a2 * (1.0 / 120.0 + a2 * (-1.0 / 5040.0 +
    a2 * (1.0 / 362880.0 + a2 * (-1.0 / 39916800.0))))));
}

// Keras's CosineDecay factor: (1 - alpha) * 0.5 * (1 + cos(pi * fraction)) + alpha.
fn cosine_decayed(fraction: f32) -> f32 {
  return hf(H_S5) * (0.5 * (1.0 + cos_pi(fraction))) + hf(H_S1);
}

// The learning rate at step t (Keras evaluates schedules at `iterations`, before the increment).
fn learning_rate(t: u32) -> f32 {
  let lr0 = hf(H_LR);
  let step = f32(t);
  switch ctl[H_KIND] {
    case 1u: {
      // ExponentialDecay: H_S0 decay_steps, H_S1 ln(decay_rate), H_S2 staircase.
      var q = step / hf(H_S0);
      if (ctl[H_S2] != 0u) {
        q = floor(q);
      }
      return lr0 * exp_acc(q * hf(H_S1));
    }
    case 2u: {
      // PiecewiseConstantDecay: H_S0 boundaries; values[k] where k counts boundaries below t.
      let nb = ctl[H_S0];
      var k = 0u;
      while (k < nb && t > ctl[PW_TABLE + k]) {
        k++;
      }
      return hf(PW_TABLE + nb + k);
    }
    case 3u: {
      // CosineDecay: H_S0 decay_steps, H_S1 alpha, H_S2 warmup_target, H_S3 warmup_steps,
      // H_S4 warmup on, H_S5 1 - alpha.
      let decay_steps = hf(H_S0);
      if (ctl[H_S4] == 0u) {
        return lr0 * cosine_decayed(min(step, decay_steps) / decay_steps);
      }
      let warmup_target = hf(H_S2);
      let warmup_steps = hf(H_S3);
      let s = min(step, decay_steps + warmup_steps);
      if (s < warmup_steps) {
        return (warmup_target - lr0) * (s / warmup_steps) + lr0;
      }
      return warmup_target * cosine_decayed((s - warmup_steps) / decay_steps);
    }
    default: {
      return lr0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The fused update

// Per-step scalars, the same for every element (computed by every invocation for itself).
struct Step {
  lr: f32,
  alpha: f32, // Adam: lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
  global_scale: f32, // globalClipnorm: the gradients' factor
  // Hyperparameters, read from `ctl` once per invocation rather than once per element.
  beta1: f32,
  one_m_beta1: f32,
  one_m_beta2: f32,
  rho: f32,
  eps: f32,
  wd: f32,
  clip: f32,
}

fn step_scalars(t: u32) -> Step {
  var st: Step;
  st.lr = learning_rate(t);
  st.beta1 = hf(H_BETA1);
  st.one_m_beta1 = hf(H_1MBETA1);
  st.one_m_beta2 = hf(H_1MBETA2);
  st.rho = hf(H_RHO);
  st.eps = hf(H_EPS);
  st.wd = hf(H_WD);
  st.clip = hf(H_CLIP);
  if (OPT == 1u) {
    let ls = f32(t + 1u);
    let bc1 = -expm1_acc(ls * hf(H_LNBETA1));
    let bc2 = -expm1_acc(ls * hf(H_LNBETA2));
    st.alpha = st.lr * sqrt(bc2) / bc1;
  }
  if (CLIP == 3u) {
    // Keras: clip_norm * min(1 / norm, 1 / clip_norm), NaN when the norm is not finite.
    let seg_norm = SEG_BASE + 3u * p.nseg;
    var total = 0.0;
    for (var k = 0u; k < p.nseg; k++) {
      total += hf(seg_norm + k);
    }
    let c = hf(H_CLIP);
    if ((bitcast<u32>(total) & 0x7f800000u) == 0x7f800000u) {
      st.global_scale = bitcast<f32>(0x7fc00000u);
    } else if (total == 0.0) {
      st.global_scale = 1.0;
    } else {
      st.global_scale = c * min(1.0 / sqrt(total), 1.0 / c);
    }
  }
  return st;
}

// One vec4 of the arena: element 4i..4i+3 of parameter `seg`.
fn update(i: u32, seg: u32, st: Step) {
  let lr = st.lr;
  var gi = g[i];
  if (CLIP == 1u) {
    let c = st.clip;
    gi = clamp(gi, vec4(-c), vec4(c));
  } else if (CLIP == 2u) {
    // Keras: g * clipnorm / max(norm, clipnorm)
    let c = st.clip;
    gi = (gi * c) / max(sqrt(hf(SEG_BASE + 3u * p.nseg + seg)), c);
  } else if (CLIP == 3u) {
    gi = gi * st.global_scale;
  }
  var wi = w[i];
  if (DECAY && (ctl[SEG_BASE + seg] & 1u) != 0u) {
    wi = wi - wi * st.wd * lr;
  }

  switch OPT {
    case 0u: {
      // SGD (Keras 3): velocity = momentum * velocity - lr * g; w += velocity, or with Nesterov
      // w += momentum * velocity - lr * g.
      if (MOMENTUM) {
        let mu = st.beta1;
        let m = s0[i] * mu - gi * lr;
        s0[i] = m;
        if (NESTEROV) {
          wi = wi + (m * mu - gi * lr);
        } else {
          wi = wi + m;
        }
      } else {
        wi = wi - gi * lr;
      }
    }
    case 1u: {
      // Adam (Keras 3): m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); AMSGrad: v = max(v_hat, v);
      // w -= m * alpha / (sqrt(v) + eps).
      let m0 = s0[i];
      let v0 = s1[i];
      let m = m0 + (gi - m0) * st.one_m_beta1;
      var v = v0 + (gi * gi - v0) * st.one_m_beta2;
      s0[i] = m;
      s1[i] = v;
      if (AMSGRAD) {
        v = max(s2[i], v);
        s2[i] = v;
      }
      wi = wi - (m * st.alpha) / (sqrt(v) + st.eps);
    }
    case 2u: {
      // RMSprop (Keras 3): v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g and
      // the denominator is v - a^2 + eps, else v + eps; inc = lr g / sqrt(denominator);
      // momentum: mom = momentum * mom + inc, w -= mom; else w -= inc.
      let rho = st.rho;
      let one_m_rho = st.one_m_beta2;
      let v = rho * s0[i] + one_m_rho * (gi * gi);
      s0[i] = v;
      var denominator = v + st.eps;
      if (CENTERED) {
        let a = rho * s2[i] + one_m_rho * gi;
        s2[i] = a;
        denominator = v - a * a + st.eps;
      }
      let inc = (lr * gi) / sqrt(denominator);
      if (MOMENTUM) {
        let mom = st.beta1 * s1[i] + inc;
        s1[i] = mom;
        wi = wi - mom;
      } else {
        wi = wi - inc;
      }
    }
    default: {
      // Adagrad (Keras 3): acc += g^2; w -= lr g / sqrt(acc + eps).
      let acc = s0[i] + gi * gi;
      s0[i] = acc;
      wi = wi - (lr * gi) / sqrt(acc + st.eps);
    }
  }
  w[i] = wi;
  if (CLEAR) {
    g[i] = vec4(0.0);
  }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let inv = gid.x + gid.y * p.stride;
  if (inv >= p.ninv) {
    return;
  }
  let wg = inv / WG;
  let lane = inv % WG;
  let block_seg = SEG_BASE + 4u * p.nseg;
  let counter = block_seg + p.blocks + inv;
  let t = ctl[counter];
  ctl[counter] = t + 1u;
  let st = step_scalars(t);
  if (inv == 0u) {
    ctl[O_LR] = bitcast<u32>(st.lr);
  }
  for (var k = 0u; k < BPW; k++) {
    let block = wg * BPW + k;
    if (block < p.blocks) {
      update(block * VB + lane, ctl[block_seg + block], st);
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
