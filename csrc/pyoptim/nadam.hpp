// Nadam, exactly as keras.optimizers.Nadam (every scalar in the variable's dtype):
//
//   (once per step, by the caller)  u_t = beta_1 * (1 - 0.5 * 0.96^t),
//       u_t_1 = beta_1 * (1 - 0.5 * 0.96^(t+1)), u_product_t (Keras' running product),
//       u_product_t_1 = u_product_t * u_t_1
//   m = m + (g - m) * (1 - beta_1)
//   v = v + (g^2 - v) * (1 - beta_2)
//   m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
//   v_hat = v / (1 - beta_2^t)
//   p = p - (m_hat * lr) / (sqrt(v_hat) + eps)
#pragma once

#include <cmath>

#include "elementwise.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

struct Nadam {
  static constexpr const char* kName = "nadam";
  static constexpr int kSlots = 2;  // momentum, velocity
  // 1 - beta_1, 1 - beta_2, u_t_1, 1 - u_product_t_1, 1 - u_t, 1 - u_product_t,
  // 1 - beta_2^t, lr, epsilon
  static constexpr int kCoeffs = 9;
  static constexpr int kVariants = 1;
  // g, g^2, ((1 - u_t) * g) / (1 - u_product_t)
  static constexpr int kTerms = 3;
  static constexpr SparseRule kSparse = SparseRule::kSummed;
  static constexpr bool kTfTail = false;
  static constexpr bool kGraphRsqrt = false;
  static constexpr bool kTensorNorms = false;

  template <int k, class T>
  static PYOPTIM_ALWAYS_INLINE T term(T g, const T* c) {
    if constexpr (k == 0) return g;
    if constexpr (k == 1) return g * g;
    return (c[4] * g) / c[5];
  }

  template <class T, int kVariant, class G>
  static PYOPTIM_ALWAYS_INLINE T update(T p, const G& g, index_t i, T* m, T* v, T*, const T* c) {
    const T omb1 = c[0], omb2 = c[1], u_t_1 = c[2], omupt1 = c[3], omb2p = c[6], lr = c[7],
            eps = c[8];
    const T mi = m[i] + (g.template get<0>(i) - m[i]) * omb1;
    const T vi = v[i] + (g.template get<1>(i) - v[i]) * omb2;
    m[i] = mi;
    v[i] = vi;
    const T m_hat = (u_t_1 * mi) / omupt1 + g.template get<2>(i);
    const T v_hat = vi / omb2p;
    return p - (m_hat * lr) / (std::sqrt(v_hat) + eps);
  }
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
