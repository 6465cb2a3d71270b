// Lamb, exactly as keras.optimizers.Lamb (every scalar in the variable's dtype; 1 - beta_1^t and
// 1 - beta_2^t computed by the caller with Keras' operations, once per step):
//
//   m = m + (g - m) * (1 - beta_1)
//   v = v + (g^2 - v) * (1 - beta_2)
//   u = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + eps)
//   w_norm = sqrt(sum(POW2(p))),  g_norm = sqrt(sum(POW2(u)))        (p after weight decay)
//   ratio = w_norm > 0 ? (g_norm > 0 ? w_norm / g_norm : 1) : 1
//   p = p - (ratio * lr) * u
//
// POW2(x) is Keras' ops.power(x, 2): TensorFlow's Pow executing eagerly (Eigen's packet pow on
// the tensor's whole packets, std::pow on its last n % P elements: tf_pow.hpp), x * x inside
// tf.function (Grappler's ConvertPow).  The sums are tf.reduce_sum's, in TensorFlow's order: the
// callers compute them (csrc/pyoptim/tf_reduce.hpp) after the update of m and v (update, which
// leaves p as it is; with a dense gradient made element by element inside the pass that sums u)
// and before the step (finish).
//
// Variants: form * 2 + tail (kTfTail), form 0 eager, 1 graph.  A sparse gradient: Keras
// densifies g and g^2 and every row changes (kSummed).
#pragma once

#include <cmath>

#include "elementwise.hpp"
#include "tf_pow.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

struct Lamb {
  static constexpr const char* kName = "lamb";
  static constexpr int kSlots = 2;  // momentum, velocity
  // 1 - beta_1, 1 - beta_2 (the Python floats, each cast once), 1 - beta_1^t, 1 - beta_2^t,
  // epsilon, lr
  static constexpr int kCoeffs = 6;
  static constexpr int kVariants = 4;  // (eager, graph) x (packet, tail)
  static constexpr bool kTfTail = true;
  static constexpr int kTerms = 2;  // g, g^2
  static constexpr SparseRule kSparse = SparseRule::kSummed;
  static constexpr bool kGraphRsqrt = false;
  static constexpr bool kTensorNorms = true;

  template <int k, class T>
  static PYOPTIM_ALWAYS_INLINE T term(T g, const T*) {
    if constexpr (k == 0) return g;
    return g * g;
  }

  // m and v; p is left as it is (it changes in finish, once the norms are known).
  template <class T, int kVariant, class G>
  static PYOPTIM_ALWAYS_INLINE T update(T p, const G& g, index_t i, T* m, T* v, T*, const T* c) {
    m[i] = m[i] + (g.template get<0>(i) - m[i]) * c[0];
    v[i] = v[i] + (g.template get<1>(i) - v[i]) * c[1];
    return p;
  }

  // Element i's u from the updated m and v.
  template <class T>
  static PYOPTIM_ALWAYS_INLINE T step(index_t i, const T* m, const T* v, const T* c) {
    return (m[i] / c[2]) / (std::sqrt(v[i] / c[3]) + c[4]);
  }

  // ops.power(x, 2) of the variant's form and position.
  template <int kVariant, class T>
  static PYOPTIM_ALWAYS_INLINE T square(T x) {
    if constexpr (kVariant / 2 == 1) return x * x;
    if constexpr (kVariant % 2 == 1) return static_cast<T>(std::pow(x, T(2)));
    return tf_pow_packet_lane(x, T(2));
  }

  // ratio = w_norm > 0 ? (g_norm > 0 ? w_norm / g_norm : 1) : 1 (ops.where on the two sums'
  // square roots), then ratio * lr.
  template <class T>
  static PYOPTIM_ALWAYS_INLINE T scale(T w_sum, T u_sum, const T* c) {
    const T w_norm = std::sqrt(w_sum), g_norm = std::sqrt(u_sum);
    const T ratio = w_norm > T(0) ? (g_norm > T(0) ? w_norm / g_norm : T(1)) : T(1);
    return ratio * c[5];
  }

  template <class T>
  static PYOPTIM_ALWAYS_INLINE T finish(T p, T u, T scale) {
    return p - scale * u;
  }
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
