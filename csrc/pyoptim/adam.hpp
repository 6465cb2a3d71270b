// Adam and AMSGrad, exactly as keras.optimizers.Adam:
//
//   alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)        (computed once per step)
//   (weight decay)  p = p - p * wd * lr
//   m = m + (g - m) * (1 - beta_1)
//   v = v + (g^2 - v) * (1 - beta_2)
//   AMSGrad:   v_hat = max(v_hat, v);  use v_hat below instead of v
//   p = p - (m * alpha) / (sqrt(v) + eps)
#pragma once

#include <cmath>

#include "common.hpp"
#include "grad.hpp"
#include "half.hpp"

namespace pyoptim {

// Plain data: the same in every instruction set's copy.

template <class T>
struct AdamCoeffs {
  T alpha;
  T one_minus_beta_1;  // (1 - beta_1) rounded once from double, as Keras does
  T one_minus_beta_2;
  T epsilon;
  T lr;            // for weight decay only
  T weight_decay;  // used only when the kernel is instantiated with kDecay
};

inline namespace PYOPTIM_ISA {

// max() as TensorFlow's Maximum computes it: NaN in either operand gives NaN.
template <class T>
inline T max_propagate_nan(T a, T b) {
  return (a < b || b != b) ? b : a;
}

// P is the storage type of param and grad: T itself, or Float16/BFloat16 with T = float.
// G gives element i's gradient and its square (grad.hpp).
template <class T, bool kAmsgrad, bool kDecay, class P = T, class G = DenseGrad<T, P>>
inline void adam_loop(P* PYOPTIM_RESTRICT p, G grad, T* PYOPTIM_RESTRICT m,
                      T* PYOPTIM_RESTRICT v, T* PYOPTIM_RESTRICT vhat, index_t begin,
                      index_t end, const AdamCoeffs<T>& c) {
  const T alpha = c.alpha, omb1 = c.one_minus_beta_1, omb2 = c.one_minus_beta_2,
          eps = c.epsilon, lr = c.lr, wd = c.weight_decay;
  PYOPTIM_SIMD_LOOP
  for (index_t i = begin; i < end; ++i) {
    T pi = load<T>(p[i]);
    if constexpr (kDecay) pi = pi - pi * wd * lr;
    const T gi = grad(i);
    const T mi = m[i] + (gi - m[i]) * omb1;
    T vi = v[i] + (grad.square(i, gi) - v[i]) * omb2;
    m[i] = mi;
    v[i] = vi;
    if constexpr (kAmsgrad) {
      vi = max_propagate_nan(vhat[i], vi);
      vhat[i] = vi;
    }
    p[i] = store<P>(pi - (mi * alpha) / (std::sqrt(vi) + eps));
  }
}

template <class T, bool kAmsgrad, bool kDecay, class P = T>
inline void adam_range(P* PYOPTIM_RESTRICT p, const P* PYOPTIM_RESTRICT g, T* PYOPTIM_RESTRICT m,
                       T* PYOPTIM_RESTRICT v, T* PYOPTIM_RESTRICT vhat, index_t begin,
                       index_t end, const AdamCoeffs<T>& c) {
  adam_loop<T, kAmsgrad, kDecay, P>(p, DenseGrad<T, P>{g}, m, v, vhat, begin, end, c);
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
