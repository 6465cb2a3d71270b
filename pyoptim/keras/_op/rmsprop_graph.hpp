// RMSprop as keras.optimizers.RMSprop computes it inside a tf.function (model.fit's default),
// where TensorFlow's graph optimiser (Grappler) rewrites Keras' expression before it runs:
//
//   * arithmetic optimisation (SqrtDivToRsqrtMulStage): (lr * g) / sqrt(d) becomes
//     (lr * g) * rsqrt(d), where TensorFlow's float32 Rsqrt kernel (Eigen, built for AVX) is
//     _mm256_rsqrt_ps refined by one Newton step on each group of 8 elements from index 0, and
//     1 / sqrt(x) on the last n % 8 elements; float64 Rsqrt is 1 / sqrt(x) everywhere;
//   * constant folding (ConstantPushDown), centered only: (v - a^2) + eps becomes (eps - a^2) + v.
//
// Eager Keras (run_eagerly=True) runs the textbook expression, which is what the shared kernel
// csrc/pyoptim/rmsprop.hpp computes; this file serves graph mode only, so that model.fit gives
// the same bits as keras.optimizers.RMSprop in both modes.  Everything else (the recurrences for
// v, a and the momentum, the operation order) is the shared kernel's.  pyoptim.keras checks on
// first use that this reproduces Keras' graph-mode result on the running machine, and runs Keras'
// own code if not.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define PYOPTIM_TF_HAVE_AVX_RSQRT 1
#else
#define PYOPTIM_TF_HAVE_AVX_RSQRT 0
#endif

#include "pyoptim/rmsprop.hpp"

namespace pyoptim_graph {

using pyoptim::index_t;

#if PYOPTIM_TF_HAVE_AVX_RSQRT
// Eigen's prsqrt<Packet8f> with EIGEN_FAST_MATH, as TensorFlow's AVX build runs it (no FMA):
//   y0 = rsqrt_approx(a);  r2 = a * y0;  half_r = y0 * -0.5;  h = r2 * y0 + -1;
//   y = half_r * h + y0;   NaN(y) ? y0 : y
__attribute__((target("avx"))) inline __m256 tf_rsqrt8(const __m256 a) {
  const __m256 y0 = _mm256_rsqrt_ps(a);
  const __m256 r2 = _mm256_mul_ps(a, y0);
  const __m256 half_r = _mm256_mul_ps(y0, _mm256_set1_ps(-0.5f));
  const __m256 h = _mm256_add_ps(_mm256_mul_ps(r2, y0), _mm256_set1_ps(-1.0f));
  const __m256 y = _mm256_add_ps(_mm256_mul_ps(half_r, h), y0);
  return _mm256_blendv_ps(y, y0, _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
}

// Elements [i, i + 8) in float32 with TensorFlow's packet Rsqrt: the same operations, in the
// same order, as graph_denominator / graph_apply below, 8 lanes at a time.
template <bool kCentered, bool kMomentum, bool kEpsFirst, bool kDecay>
__attribute__((target("avx"))) inline void rmsprop_graph_avx8(
    float* p, const float* g, float* v, float* mom, float* avg, index_t i,
    const pyoptim::RmspropCoeffs<float>& c) {
  const __m256 rho = _mm256_set1_ps(c.rho), omr = _mm256_set1_ps(c.one_minus_rho);
  const __m256 eps = _mm256_set1_ps(c.epsilon), lr = _mm256_set1_ps(c.lr);
  const __m256 gi = _mm256_loadu_ps(g + i);
  const __m256 vi = _mm256_add_ps(_mm256_mul_ps(rho, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(omr, _mm256_mul_ps(gi, gi)));
  _mm256_storeu_ps(v + i, vi);
  __m256 d;
  if constexpr (kCentered) {
    const __m256 ai = _mm256_add_ps(_mm256_mul_ps(rho, _mm256_loadu_ps(avg + i)),
                                    _mm256_mul_ps(omr, gi));
    _mm256_storeu_ps(avg + i, ai);
    const __m256 a2 = _mm256_mul_ps(ai, ai);
    if constexpr (kEpsFirst) {
      d = _mm256_add_ps(_mm256_sub_ps(eps, a2), vi);
    } else {
      d = _mm256_add_ps(_mm256_sub_ps(vi, a2), eps);
    }
  } else {
    d = _mm256_add_ps(vi, eps);
  }
  const __m256 inc = _mm256_mul_ps(_mm256_mul_ps(lr, gi), tf_rsqrt8(d));
  __m256 pi = _mm256_loadu_ps(p + i);
  if constexpr (kDecay) {  // Keras' decay, before the update: p - p * wd * decay_lr
    pi = _mm256_sub_ps(pi, _mm256_mul_ps(_mm256_mul_ps(pi, _mm256_set1_ps(c.weight_decay)),
                                         _mm256_set1_ps(c.decay_lr)));
  }
  if constexpr (kMomentum) {
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(c.momentum),
                                                  _mm256_loadu_ps(mom + i)), inc);
    _mm256_storeu_ps(mom + i, mi);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, mi));
  } else {
    _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, inc));
  }
}
#endif

// Whether the float32 packet emulation exists in this build.
constexpr bool kHaveTfRsqrtEmulation = PYOPTIM_TF_HAVE_AVX_RSQRT != 0;

// The element-wise part before the square root: updates v (and a), returns d.
template <class T, bool kCentered, bool kEpsFirst>
inline T graph_denominator(const T gi, T* v, T* avg, index_t i, const pyoptim::RmspropCoeffs<T>& c) {
  const T vi = c.rho * v[i] + c.one_minus_rho * (gi * gi);
  v[i] = vi;
  if constexpr (kCentered) {
    const T ai = c.rho * avg[i] + c.one_minus_rho * gi;
    avg[i] = ai;
    if constexpr (kEpsFirst) {
      return (c.epsilon - ai * ai) + vi;
    } else {
      return (vi - ai * ai) + c.epsilon;
    }
  } else {
    return vi + c.epsilon;
  }
}

// The element-wise part after it: momentum and parameter (after Keras' decay when kDecay).
template <class T, bool kMomentum, bool kDecay>
inline void graph_apply(T* p, T* mom, index_t i, const T inc, const pyoptim::RmspropCoeffs<T>& c) {
  T pi = p[i];
  if constexpr (kDecay) pi = pi - pi * c.weight_decay * c.decay_lr;
  if constexpr (kMomentum) {
    const T mi = c.momentum * mom[i] + inc;
    mom[i] = mi;
    p[i] = pi - mi;
  } else {
    p[i] = pi - inc;
  }
}

// Updates [begin, end) of a tensor of n elements.  begin must be a multiple of 8 (the op's
// blocks start at multiples of 16), so groups of 8 line up with TensorFlow's packets.
// kRsqrt: (lr * g) * rsqrt(d) as TensorFlow computes Rsqrt; else (lr * g) / sqrt(d).
template <class T, bool kCentered, bool kMomentum, bool kRsqrt, bool kEpsFirst, bool kDecay>
inline void rmsprop_graph_range(T* p, const T* g, T* v, T* mom, T* avg, index_t begin,
                                index_t end, index_t n, const pyoptim::RmspropCoeffs<T>& c) {
  index_t i = begin;
#if PYOPTIM_TF_HAVE_AVX_RSQRT
  if constexpr (kRsqrt && std::is_same<T, float>::value) {
    const index_t packet_end = std::min<index_t>(end, n - n % 8);
    for (; i + 8 <= packet_end; i += 8) {
      rmsprop_graph_avx8<kCentered, kMomentum, kEpsFirst, kDecay>(p, g, v, mom, avg, i, c);
    }
  }
#endif
  PYOPTIM_SIMD_LOOP
  for (index_t j = i; j < end; ++j) {
    const T gj = g[j];
    const T d = graph_denominator<T, kCentered, kEpsFirst>(gj, v, avg, j, c);
    T inc;
    if constexpr (kRsqrt) {
      inc = (c.lr * gj) * (T(1) / std::sqrt(d));  // Eigen's scalar (and float64) rsqrt
    } else {
      inc = (c.lr * gj) / std::sqrt(d);
    }
    graph_apply<T, kMomentum, kDecay>(p, mom, j, inc, c);
  }
}

}  // namespace pyoptim_graph
