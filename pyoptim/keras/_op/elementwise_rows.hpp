// The element-wise kernels (csrc/pyoptim/elementwise.hpp) over one variable in the op's pass,
// dense or sparse.  TensorFlow-free, like sparse_rows.hpp (whose SparseGrad it walks), so that a
// fuzz test can run it under AddressSanitizer.
//
// A tf.IndexedSlices gradient, for an optimizer whose Keras update only densifies its gradient
// terms (SparseRule::kSummed): every row of the table runs the dense loop, a row no slice hits
// with +0.0 terms (ZeroTerms: the zeros of Keras' densified gradient), a hit row with each term
// summed over the row's slices in index order from +0.0 (unsorted_segment_sum), S(term_k(slice)).
// One whose Keras update scatters (SparseRule::kRows): the kernel's sparse_row on the rows
// present (and Keras' weight decay on every row when the variable decays).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>
#include <utility>

#include "pyoptim/elementwise.hpp"
#include "rmsprop_graph.hpp"  // tf_rsqrt8: TensorFlow's float32 Rsqrt packet
#include "sparse_rows.hpp"

namespace pyoptim_elementwise {

using pyoptim::index_t;

// Calls f(std::integral_constant<int, v>{}) for the run-time variant v in [0, K::kVariants).
template <class K, class F, int... kV>
void WithVariantImpl(int variant, const F& f, std::integer_sequence<int, kV...>) {
  ((variant == kV ? (f(std::integral_constant<int, kV>{}), true) : false) || ...);
}
template <class K, class F>
void WithVariant(int variant, const F& f) {
  WithVariantImpl<K>(variant, f, std::make_integer_sequence<int, K::kVariants>{});
}

template <class T>
T* At(T* base, index_t offset) {
  return base == nullptr ? nullptr : base + offset;
}

constexpr index_t kTermChunk = 256;

// sums[k][x] = sums[k][x] + term_k(v[x], c) for every term k and x < w: one slice, added in
// index order as unsorted_segment_sum adds it.
template <class K, class T, int... kK>
void AddTerms(T (*sums)[kTermChunk], const T* v, index_t w, const T* c,
              std::integer_sequence<int, kK...>) {
  (..., [&] {
    for (index_t x = 0; x < w; ++x) sums[kK][x] = sums[kK][x] + K::template term<kK>(v[x], c);
  }());
}

// A kSummed kernel's sparse update over elements [b, e) of the table: rows no slice hits with
// +0.0 terms, hit rows with each term summed over the row's slices.
template <class K, class T, int kV, bool kDecay>
void SummedRange(T* p, T* const* s, const pyoptim_sparse::SparseGrad<T>& sparse, index_t b,
                 index_t e, const pyoptim::ElementwiseCoeffs<T>& c) {
  using pyoptim::elementwise_loop;
  static_assert(K::kTerms <= 4, "SummedTerms holds four terms");
  sparse.Walk(
      b, e,
      [&](index_t lo, index_t hi) {
        elementwise_loop<K, T, kV, kDecay, T>(p, pyoptim::ZeroTerms<T>{}, s[0], s[1], s[2], lo,
                                              hi, c);
      },
      [&](index_t j, index_t off, index_t lo, index_t hi) {
        T sums[K::kTerms][kTermChunk];
        for (index_t cb = lo; cb < hi; cb += kTermChunk) {
          const index_t w = std::min(hi - cb, kTermChunk);
          for (int k = 0; k < K::kTerms; ++k) std::fill(sums[k], sums[k] + w, T(0));
          for (index_t q = sparse.start[j]; q < sparse.start[j + 1]; ++q) {
            AddTerms<K>(sums, sparse.slice[q] + cb, w, c.c,
                        std::make_integer_sequence<int, K::kTerms>{});
          }
          pyoptim::SummedTerms<T> terms{};
          for (int k = 0; k < K::kTerms; ++k) terms.s[k] = sums[k];
          const index_t at = off + cb;
          elementwise_loop<K, T, kV, kDecay, T>(p + at, terms, At(s[0], at), At(s[1], at),
                                                At(s[2], at), 0, w, c);
        }
      });
}

// Keras' weight decay alone, p - p * wd * lr: a row that a scattered (kRows) sparse update
// leaves untouched.
template <class T>
void DecayOnly(T* p, index_t b, index_t e, const pyoptim::ElementwiseCoeffs<T>& c) {
  const T wd = c.weight_decay, lr = c.decay_lr;
  PYOPTIM_SIMD_LOOP
  for (index_t i = b; i < e; ++i) p[i] = p[i] - p[i] * wd * lr;
}

#if PYOPTIM_TF_HAVE_AVX_RSQRT
// r[0..8) = TensorFlow's float32 Rsqrt packet of x[0..8) (AVX, whatever this file's -m flags).
__attribute__((target("avx"))) inline void TfRsqrt8(const float* x, float* r) {
  _mm256_storeu_ps(r, pyoptim_graph::tf_rsqrt8(_mm256_loadu_ps(x)));
}
#endif

// Graph form (K::kGraphRsqrt, inside tf.function): Grappler's a * rsqrt(x) in the place of
// Keras' a / sqrt(x), with TensorFlow's Rsqrt: in float32 its AVX packet (rmsprop_graph.hpp's
// tf_rsqrt8) on each group of 8 elements from the tensor's index 0 and 1 / sqrt(x) on the
// tensor's last n % 8; in float64 1 / sqrt(x).  Elements [b, e) of a tensor of n; b must be a
// multiple of 8 (the op's blocks start at multiples of 16).  Chunks of kTermChunk elements go
// through before_sqrt, the square root and after_rsqrt while they are in cache.
template <class K, class T, bool kDecay>
void GraphRange(T* p, T* const* s, const T* g, index_t b, index_t e, index_t n,
                const pyoptim::ElementwiseCoeffs<T>& coeffs) {
  std::array<T, K::kCoeffs> c;
  for (int k = 0; k < K::kCoeffs; ++k) c[k] = coeffs.c[k];
  const T wd = coeffs.weight_decay, lr = coeffs.decay_lr;
  const pyoptim::DenseTerms<K, T> terms(g, coeffs.c);
  T* s0 = s[0];
  T* s1 = s[1];
  T* s2 = s[2];
  T x[kTermChunk], r[kTermChunk];
  for (index_t cb = b; cb < e; cb += kTermChunk) {
    const index_t w = std::min(e - cb, kTermChunk);
    PYOPTIM_SIMD_LOOP
    for (index_t j = 0; j < w; ++j) x[j] = K::template before_sqrt<T>(terms, cb + j, s0, s1, s2, c.data());
    index_t j = 0;
#if PYOPTIM_TF_HAVE_AVX_RSQRT
    if constexpr (std::is_same<T, float>::value) {
      const index_t packets = std::max<index_t>(0, std::min(cb + w, n - n % 8) - cb);
      for (; j + 8 <= packets; j += 8) TfRsqrt8(x + j, r + j);
    }
#endif
    PYOPTIM_SIMD_LOOP
    for (index_t q = j; q < w; ++q) r[q] = T(1) / std::sqrt(x[q]);  // Eigen's scalar rsqrt
    PYOPTIM_SIMD_LOOP
    for (index_t q = 0; q < w; ++q) {
      T pi = p[cb + q];
      if constexpr (kDecay) pi = pi - pi * wd * lr;
      p[cb + q] = K::template after_rsqrt<T>(pi, terms, cb + q, s0, s1, s2, c.data(), r[q]);
    }
  }
}

// Elements [b, e) of one variable (p, slots s[0..2], each of its shape, n elements): a dense
// gradient `g`, or the sparse one `sparse` (when not null), as Keras computes the update
// (kGraph: inside tf.function, as Grappler rewrites it).  For a kRows kernel the elements are
// the hit rows' (laid end to end) unless it decays (then the table's; see HitRowsOnly).
template <class K, class T, int kV, bool kDecay, bool kGraph>
void Range(T* p, T* const* s, const T* g, const pyoptim_sparse::SparseGrad<T>* sparse, index_t b,
           index_t e, index_t n, const pyoptim::ElementwiseCoeffs<T>& c) {
  using pyoptim::elementwise_loop;
  if (sparse == nullptr) {
    if constexpr (kGraph && K::kGraphRsqrt) {
      GraphRange<K, T, kDecay>(p, s, g, b, e, n, c);
    } else {
      elementwise_loop<K, T, kV, kDecay, T>(p, pyoptim::DenseTerms<K, T>(g, c.c), s[0], s[1],
                                            s[2], b, e, c);
    }
    return;
  }
  if constexpr (K::kSparse == pyoptim::SparseRule::kRows) {
    // Keras: the decay (every row), then the scatters on the rows present.
    auto hit = [&](index_t j, index_t off, index_t lo, index_t hi) {
      if constexpr (kDecay) DecayOnly(p + off, lo, hi, c);
      const index_t first = sparse->start[j];
      K::template sparse_row<T>(p + off, At(s[0], off), At(s[1], off), At(s[2], off),
                                &sparse->slice[first], sparse->start[j + 1] - first, lo, hi,
                                c.c);
    };
    if constexpr (kDecay || K::kSparseUntouched) {
      sparse->Walk(
          b, e,
          [&](index_t lo, index_t hi) {
            if constexpr (kDecay) DecayOnly(p, lo, hi, c);
            if constexpr (K::kSparseUntouched) {
              K::template sparse_untouched<T>(p, s[0], s[1], s[2], lo, hi, c.c);
            }
          },
          hit);
    } else {
      sparse->WalkHitRows(b, e, hit);
    }
    return;
  } else {
    static_assert(!K::kGraphRsqrt, "a summed sparse update has no graph form here");
    SummedRange<K, T, kV, kDecay>(p, s, *sparse, b, e, c);
  }
}

// Whether a sparse update of K covers the hit rows only (else the whole table).
template <class K>
constexpr bool HitRowsOnly(bool decay) {
  if constexpr (K::kSparse == pyoptim::SparseRule::kRows) {
    return !K::kSparseUntouched && !decay;
  } else {
    return false;
  }
}

}  // namespace pyoptim_elementwise
