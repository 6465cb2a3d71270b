// Adam and AdamW with 8-bit block-wise state (Adam8bit): m and v kept as one byte per element
// plus one scale per block of `block` elements (the block's absolute maximum), dequantised,
// updated and requantised in the same single pass over memory.
//
// The codes (power codes, chosen by measurement: bench/quant_codes.py):
//
//   m (signed,   int8  q in [-127, 127]):  m = ((q * |q|) * K_M) * scale_m,   K_M = 1 / 127^2
//   v (unsigned, uint8 q in [0, 255]):      v = (((q * q) * (q * q)) * K_V) * scale_v,
//                                                                              K_V = 1 / 255^4
//
// i.e. sqrt(|m| / scale) and (v / scale)^(1/4) are stored on a uniform grid: fine steps near
// zero, where most of a block's values are, and the denominator sqrt(v) keeps two significant
// digits down to 1e-4 of its block's largest.  Per element (Adam's arithmetic, Keras' order):
//
//   (weight decay)  p = p - p * wd * lr
//   m = m + (g - m) * (1 - beta_1)
//   v = v + (g^2 - v) * (1 - beta_2)
//   AMSGrad:  v_hat = max(v_hat, v) (v_hat stored with v's code), used instead of v below
//   p = p - (m * alpha) / (sqrt(v) + eps)            with the new m and v before requantisation
//
// then, per block, scale = max |x| over the block's new values and
//
//   q_m = sign(m) * rint(sqrt(|m| * inv_m) * 127),            inv_m = 1 / scale_m
//   q_v = rint(sqrt(sqrt(v) * inv_root) * 255),               inv_root = sqrt(1 / scale_v)
//
// (inv = 0 for a zero scale; sqrt(v) is the update's own denominator, so v's code costs one
// more square root, not two; v_hat likewise with sqrt(v_hat).  The products are at most
// 1 + a few ulps, so the codes never pass 127 and 255.)
// rint rounds half to even (as (x + 1.5 * 2^23) - 1.5 * 2^23, which every instruction set
// vectorises).  A block whose new m (or v, v_hat) holds a NaN or an infinity stores the scale NaN
// and codes 0: its parameters got this step's value (NaN only where the element's own arithmetic
// gave NaN), and from the next step on every element of that block dequantises to NaN, so its
// parameters become NaN (as a NaN spreads through float32 Adam's element, here through its
// block).  Other blocks never read it.  Blocks are independent and each is computed whole by
// one thread, so the result does not depend on the number of threads, the instruction set or
// the position of the tensor in a list.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "adam.hpp"
#include "common.hpp"
#include "grad.hpp"
#include "half.hpp"

namespace pyoptim {

// Block sizes accepted (elements per scale).
constexpr index_t kMinQuantBlock = 32;
constexpr index_t kMaxQuantBlock = 4096;
constexpr index_t kQuantBlockMultiple = 32;

// One tensor of an 8-bit update.  S is the scale type (the arithmetic type T).
struct QuantSegment {
  void* p;                  // parameter, updated in place
  const void* g;            // gradient, read only
  std::int8_t* m;           // n codes
  std::uint8_t* v;          // n codes
  std::uint8_t* vhat;       // n codes (AMSGrad) or null
  void* m_scale;            // ceil(n / block) scales of T
  void* v_scale;
  void* vhat_scale;         // or null
  index_t n;
};

inline namespace PYOPTIM_ISA {

template <class T>
struct QuantConstants;
template <>
struct QuantConstants<float> {
  static constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
};
template <>
struct QuantConstants<double> {
  static constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
};

// The codes' values: exact functions of the code, in T.
template <class T>
inline T decode_signed(std::int8_t q) {
  const T qf = static_cast<T>(q);
  return (qf * std::abs(qf)) * static_cast<T>(1.0 / 16129.0);
}
template <class T>
inline T decode_unsigned(std::uint8_t q) {
  const T qf = static_cast<T>(q);
  const T sq = qf * qf;
  return (sq * sq) * static_cast<T>(1.0 / 4228250625.0);
}

// x in [0, 2^22]: the nearest integer, ties to even (no rint call: vectorises everywhere).
template <class T>
inline T round_half_even(T x) {
  return (x + QuantConstants<T>::kRound) - QuantConstants<T>::kRound;
}

// The scale stored for a block whose largest |value| is `absmax` (NaN when a value was not
// finite) and the factor that encodes it.
template <class T>
inline void block_scale(T absmax, bool finite, T* scale, T* inv) {
  *scale = finite ? absmax : std::numeric_limits<T>::quiet_NaN();
  // 1 / absmax overflows for absmax below about 2.9e-39 (float): such a block codes as zeros.
  const T r = absmax > T(0) ? T(1) / absmax : T(0);
  *inv = (finite && r <= std::numeric_limits<T>::max()) ? r : T(0);
}

// Elements [b, e) of one tensor, one block: b is a multiple of the block size, e - b <= it.
// `blk` indexes the block's scales.  mb, vb (and hb, AMSGrad): kMaxQuantBlock scratch values
// each.  Four plain loops, each over one element type, so that the compiler uses the widest
// vectors for the arithmetic (a loop mixing int8 and float is vectorised at half width):
// dequantise; update (and the block's largest values); encode; store the codes.
template <class T, bool kAmsgrad, bool kDecay, class P, class G>
inline void adam8bit_block(P* PYOPTIM_RESTRICT p, const G& grad, std::int8_t* PYOPTIM_RESTRICT qm,
                           std::uint8_t* PYOPTIM_RESTRICT qv, std::uint8_t* PYOPTIM_RESTRICT qvh,
                           T* sm, T* sv, T* svh, index_t blk, index_t b, index_t e,
                           const AdamCoeffs<T>& c, T* PYOPTIM_RESTRICT mb,
                           T* PYOPTIM_RESTRICT vb, T* PYOPTIM_RESTRICT hb) {
  const T alpha = c.alpha, omb1 = c.one_minus_beta_1, omb2 = c.one_minus_beta_2,
          eps = c.epsilon, lr = c.lr, wd = c.weight_decay;
  const T scale_m = sm[blk], scale_v = sv[blk], scale_vh = kAmsgrad ? svh[blk] : T(0);
  const index_t len = e - b;
  T am = T(0), av = T(0), avh = T(0);
  // +0 while every new value is finite, NaN once one is not (x - x is +0 for a finite x, NaN
  // for an infinity or a NaN; an order-free sum, so that the loop has no flag to branch on and
  // stays vectorised with AMSGrad's maximum too).
  T nonfinite = T(0);
  // 0. dequantise into the scratch buffers
#pragma omp simd
  for (index_t j = 0; j < len; ++j) {
    mb[j] = decode_signed<T>(qm[b + j]) * scale_m;
    vb[j] = decode_unsigned<T>(qv[b + j]) * scale_v;
    if constexpr (kAmsgrad) hb[j] = decode_unsigned<T>(qvh[b + j]) * scale_vh;
  }
  // 1. Adam's update, the parameter from the new unquantised m and v (or v_hat); keep m and
  //    sqrt(v) (sqrt(v_hat)) for the encoding and the block's largest values
#pragma omp simd reduction(max : am, av, avh) reduction(+ : nonfinite)
  for (index_t j = 0; j < len; ++j) {
    const index_t i = b + j;
    T pi = load<T>(p[i]);
    if constexpr (kDecay) pi = pi - pi * wd * lr;
    const T gi = grad(i);
    const T m0 = mb[j], v0 = vb[j];
    const T mi = m0 + (gi - m0) * omb1;
    const T vi = v0 + (grad.square(i, gi) - v0) * omb2;
    const T ami = std::abs(mi), avi = std::abs(vi);
    am = ami > am ? ami : am;
    av = avi > av ? avi : av;
    nonfinite += (ami - ami) + (avi - avi);
    T root = std::sqrt(vi);
    if constexpr (kAmsgrad) {
      const T vh = max_propagate_nan(hb[j], vi);
      const T avhi = std::abs(vh);
      avh = avhi > avh ? avhi : avh;
      nonfinite += avhi - avhi;
      hb[j] = std::sqrt(vh);
      p[i] = store<P>(pi - (mi * alpha) / (hb[j] + eps));
    } else {
      p[i] = store<P>(pi - (mi * alpha) / (root + eps));
    }
    mb[j] = mi;
    vb[j] = root;
  }
  // 2. the block's new scales
  const bool finite = nonfinite == T(0);
  T inv_m, inv_v, inv_vh = T(0);
  block_scale(am, finite, &sm[blk], &inv_m);
  block_scale(av, finite, &sv[blk], &inv_v);
  if constexpr (kAmsgrad) block_scale(avh, finite, &svh[blk], &inv_vh);
  inv_v = std::sqrt(inv_v);
  inv_vh = std::sqrt(inv_vh);
  if (!finite) {
    for (index_t j = 0; j < len; ++j) {
      qm[b + j] = 0;
      qv[b + j] = 0;
      if constexpr (kAmsgrad) qvh[b + j] = 0;
    }
    return;
  }
  // 3. the codes, as floats; 4. stored as bytes
#pragma omp simd
  for (index_t j = 0; j < len; ++j) {
    mb[j] = std::copysign(round_half_even(std::sqrt(std::abs(mb[j]) * inv_m) * T(127)), mb[j]);
    vb[j] = round_half_even(std::sqrt(vb[j] * inv_v) * T(255));
    if constexpr (kAmsgrad) hb[j] = round_half_even(std::sqrt(hb[j] * inv_vh) * T(255));
  }
#pragma omp simd
  for (index_t j = 0; j < len; ++j) {
    qm[b + j] = static_cast<std::int8_t>(static_cast<int>(mb[j]));
    qv[b + j] = static_cast<std::uint8_t>(static_cast<int>(vb[j]));
    if constexpr (kAmsgrad) qvh[b + j] = static_cast<std::uint8_t>(static_cast<int>(hb[j]));
  }
}

// Blocks [blo, bhi) of one tensor of n elements.
template <class T, bool kAmsgrad, bool kDecay, class P = T, class G = DenseGrad<T, P>>
inline void adam8bit_blocks(P* p, G grad, std::int8_t* qm, std::uint8_t* qv, std::uint8_t* qvh,
                            T* sm, T* sv, T* svh, index_t n, index_t block, index_t blo,
                            index_t bhi, const AdamCoeffs<T>& c) {
  alignas(64) T mb[kMaxQuantBlock];
  alignas(64) T vb[kMaxQuantBlock];
  alignas(64) T hb[kAmsgrad ? kMaxQuantBlock : 1];
  for (index_t k = blo; k < bhi; ++k) {
    const index_t b = k * block;
    const index_t e = b + block < n ? b + block : n;
    adam8bit_block<T, kAmsgrad, kDecay, P, G>(p, grad, qm, qv, qvh, sm, sv, svh, k, b, e, c, mb,
                                               vb, hb);
  }
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
