// Adagrad, exactly as keras.optimizers.Adagrad (lr in the variable's dtype; epsilon, a Python
// float, converted once to it):
//
//   acc = acc + g^2
//   p = p - (lr * g) / sqrt(acc + eps)
//
// Inside tf.function Grappler rewrites the division to (lr * g) * rsqrt(acc + eps); the
// TensorFlow op computes that form from before_sqrt / after_rsqrt (kGraphRsqrt).  A sparse
// gradient (Keras scatters it): acc += g^2 slice after slice, then p -= (lr * g) / sqrt(acc +
// eps) slice after slice, on the rows present only (sparse_row).
#pragma once

#include <cmath>

#include "elementwise.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

struct Adagrad {
  static constexpr const char* kName = "adagrad";
  static constexpr int kSlots = 1;  // accumulator
  static constexpr int kCoeffs = 2;  // lr, epsilon
  static constexpr int kVariants = 1;
  static constexpr int kTerms = 1;  // g
  static constexpr SparseRule kSparse = SparseRule::kRows;
  static constexpr bool kSparseUntouched = false;  // rows no slice hits keep their values
  static constexpr bool kTfTail = false;
  static constexpr bool kGraphRsqrt = true;
  static constexpr bool kTensorNorms = false;

  template <int k, class T>
  static PYOPTIM_ALWAYS_INLINE T term(T g, const T*) {
    return g;
  }

  // The update up to Keras' square root: acc = acc + g^2; returns its argument, acc + eps.
  template <class T, class G>
  static PYOPTIM_ALWAYS_INLINE T before_sqrt(const G& g, index_t i, T* acc, T*, T*, const T* c) {
    const T gi = g.template get<0>(i);
    const T a = acc[i] + gi * gi;
    acc[i] = a;
    return a + c[1];
  }

  // The rest, given r = 1 / sqrt(acc + eps) as TensorFlow's Rsqrt computes it (graph form).
  template <class T, class G>
  static PYOPTIM_ALWAYS_INLINE T after_rsqrt(T p, const G& g, index_t i, T*, T*, T*, const T* c, T r) {
    return p - (c[0] * g.template get<0>(i)) * r;
  }

  template <class T, int kVariant, class G>
  static PYOPTIM_ALWAYS_INLINE T update(T p, const G& g, index_t i, T* acc, T* s1, T* s2, const T* c) {
    const T x = before_sqrt<T>(g, i, acc, s1, s2, c);
    return p - (c[0] * g.template get<0>(i)) / std::sqrt(x);
  }

  // Columns [lo, hi) of one row hit by `count` slices (Keras' scatter_add, then scatter_sub,
  // each in index order); p and acc point at the row.
  template <class T>
  static void sparse_row(T* p, T* acc, T*, T*, const T* const* slices, index_t count, index_t lo,
                         index_t hi, const T* c) {
    for (index_t q = 0; q < count; ++q) {
      const T* v = slices[q];
      for (index_t x = lo; x < hi; ++x) acc[x] = acc[x] + v[x] * v[x];
    }
    for (index_t q = 0; q < count; ++q) {
      const T* v = slices[q];
      for (index_t x = lo; x < hi; ++x) p[x] = p[x] - (c[0] * v[x]) / std::sqrt(acc[x] + c[1]);
    }
  }
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
