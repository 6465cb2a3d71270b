// RMSprop, plain or centered, with optional momentum, exactly as keras.optimizers.RMSprop
// (epsilon inside the square root):
//
//   (weight decay)  p = p - p * wd * decay_lr   (decay_lr = lr; see RmspropCoeffs)
//   v   = rho * v + (1 - rho) * g^2
//   centered:  a = rho * a + (1 - rho) * g;   d = (v - a^2) + eps
//   otherwise: d = v + eps
//   inc = (lr * g) / sqrt(d)
//   momentum:  mom = momentum * mom + inc;    p = p - mom
//   otherwise: p = p - inc
#pragma once

#include <cmath>

#include "common.hpp"
#include "grad.hpp"
#include "half.hpp"

namespace pyoptim {

// Plain data: the same in every instruction set's copy.

template <class T>
struct RmspropCoeffs {
  T lr;
  T rho;
  T one_minus_rho;  // (1 - rho) rounded once from double, as Keras does
  T epsilon;
  T momentum;
  T weight_decay;
  T decay_lr;  // the decay's learning rate: lr, or 1 when weight_decay holds wd * lr
};

inline namespace PYOPTIM_ISA {

// Keras' denominator; kEpsFirst: centered as Grappler's constant folding rewrites it inside
// tf.function, (eps - a^2) + v.
template <class T, bool kCentered, bool kEpsFirst>
inline T rmsprop_denominator(T vi, T ai, T eps) {
  if constexpr (!kCentered) {
    return vi + eps;
  } else if constexpr (kEpsFirst) {
    return (eps - ai * ai) + vi;
  } else {
    return (vi - ai * ai) + eps;
  }
}

// P is the storage type of param and grad: T itself, or Float16/BFloat16 with T = float.
// G gives element i's gradient (grad.hpp).
template <class T, bool kCentered, bool kMomentum, bool kDecay, class P = T,
          class G = DenseGrad<T, P>, bool kEpsFirst = false>
inline void rmsprop_loop(P* PYOPTIM_RESTRICT p, G grad, T* PYOPTIM_RESTRICT v,
                         T* PYOPTIM_RESTRICT mom, T* PYOPTIM_RESTRICT avg, index_t begin,
                         index_t end, const RmspropCoeffs<T>& c) {
  const T lr = c.lr, rho = c.rho, omr = c.one_minus_rho, eps = c.epsilon, mu = c.momentum,
          wd = c.weight_decay, dlr = c.decay_lr;
  PYOPTIM_SIMD_LOOP
  for (index_t i = begin; i < end; ++i) {
    T pi = load<T>(p[i]);
    if constexpr (kDecay) pi = pi - pi * wd * dlr;
    const T gi = grad(i);
    const T vi = rho * v[i] + omr * (gi * gi);
    v[i] = vi;
    T ai = T(0);
    if constexpr (kCentered) {
      ai = rho * avg[i] + omr * gi;
      avg[i] = ai;
    }
    const T inc = (lr * gi) / std::sqrt(rmsprop_denominator<T, kCentered, kEpsFirst>(vi, ai, eps));
    if constexpr (kMomentum) {
      const T mi = mu * mom[i] + inc;
      mom[i] = mi;
      pi = pi - mi;
    } else {
      pi = pi - inc;
    }
    p[i] = store<P>(pi);
  }
}

template <class T, bool kCentered, bool kMomentum, bool kDecay, class P = T>
inline void rmsprop_range(P* PYOPTIM_RESTRICT p, const P* PYOPTIM_RESTRICT g,
                          T* PYOPTIM_RESTRICT v, T* PYOPTIM_RESTRICT mom,
                          T* PYOPTIM_RESTRICT avg, index_t begin, index_t end,
                          const RmspropCoeffs<T>& c) {
  rmsprop_loop<T, kCentered, kMomentum, kDecay, P>(p, DenseGrad<T, P>{g}, v, mom, avg, begin, end,
                                                    c);
}

// Rows a tf.IndexedSlices gradient does not hit, without momentum or decay: rmsprop_loop with a
// zero gradient, except that the parameter is read and written only where Keras' increment
// (lr * 0) / sqrt(d) is not +0 (NaN where d is 0 or NaN): elsewhere p - (+0) == p, bit for bit.
// A second loop, run only if the first saw such an element, recomputes the increment from the
// stored v and a (the same bits) and applies it.
template <class T, bool kCentered, bool kEpsFirst = false>
inline void rmsprop_unhit_loop(T* PYOPTIM_RESTRICT p, T* PYOPTIM_RESTRICT v,
                               T* PYOPTIM_RESTRICT avg, index_t begin, index_t end,
                               const RmspropCoeffs<T>& c) {
  const T lr = c.lr, rho = c.rho, omr = c.one_minus_rho, eps = c.epsilon, zero = T(0);
  auto increment = [&](T vi, T ai) {
    return (lr * zero) / std::sqrt(rmsprop_denominator<T, kCentered, kEpsFirst>(vi, ai, eps));
  };
  int touches = 0;
  _Pragma("omp simd reduction(|:touches)")
  for (index_t i = begin; i < end; ++i) {
    const T vi = rho * v[i] + omr * (zero * zero);
    v[i] = vi;
    T ai = zero;
    if constexpr (kCentered) {
      ai = rho * avg[i] + omr * zero;
      avg[i] = ai;
    }
    const T inc = increment(vi, ai);
    touches |= static_cast<int>(!(inc == zero) || std::signbit(inc));
  }
  if (!touches) return;
  for (index_t i = begin; i < end; ++i) {
    const T inc = increment(v[i], kCentered ? avg[i] : zero);
    if (!(inc == zero) || std::signbit(inc)) p[i] = p[i] - inc;
  }
}

// n columns of one row hit by a tf.IndexedSlices gradient, from column `col`, as Keras computes
// them: g[0 .. count) point at the slices hitting the row (in index order; their columns from
// `col` on are used), sv and sa at the row's sums S((1 - rho) g^2) and S((1 - rho) g) (from +0.0,
// in index order) for these columns; p, v, mom and avg at the row's column `col`.
//   v = rho * v + sv;  centered: a = rho * a + sa
//   each slice's increment inc_k = (lr * g_k) / sqrt(d), d as above
//   momentum: mom = momentum * mom + S(inc);  p = p - mom
//   otherwise p = p - inc_k for each slice in turn (a scatter_sub)
template <class T, bool kCentered, bool kMomentum, bool kDecay, bool kEpsFirst = false>
inline void rmsprop_sparse_row(T* PYOPTIM_RESTRICT p, const T* const* g, index_t count,
                               index_t col, const T* PYOPTIM_RESTRICT sv,
                               const T* PYOPTIM_RESTRICT sa, T* PYOPTIM_RESTRICT v,
                               T* PYOPTIM_RESTRICT mom, T* PYOPTIM_RESTRICT avg, index_t n,
                               const RmspropCoeffs<T>& c) {
  const T lr = c.lr, rho = c.rho, eps = c.epsilon, mu = c.momentum, wd = c.weight_decay,
          dlr = c.decay_lr;
  for (index_t i = 0; i < n; ++i) {
    T pi = p[i];
    if constexpr (kDecay) pi = pi - pi * wd * dlr;
    const T vi = rho * v[i] + sv[i];
    v[i] = vi;
    T ai = T(0);
    if constexpr (kCentered) {
      ai = rho * avg[i] + sa[i];
      avg[i] = ai;
    }
    const T s = std::sqrt(rmsprop_denominator<T, kCentered, kEpsFirst>(vi, ai, eps));
    if constexpr (kMomentum) {
      T sum = T(0);
      for (index_t k = 0; k < count; ++k) sum = sum + (lr * g[k][col + i]) / s;
      const T mi = mu * mom[i] + sum;
      mom[i] = mi;
      pi = pi - mi;
    } else {
      for (index_t k = 0; k < count; ++k) pi = pi - (lr * g[k][col + i]) / s;
    }
    p[i] = pi;
  }
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
