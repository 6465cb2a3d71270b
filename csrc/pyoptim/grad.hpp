// Where a kernel loop reads element i's gradient (and, for Adam, its square):
//
//   DenseGrad   a dense gradient:                    g[i],  g[i] * g[i]
//   NoGrad      a row that no sparse slice hits:      0,     0
//   SummedGrad  a row of a sparse gradient's slices summed as Keras densifies a
//               tf.IndexedSlices (unsorted_segment_sum, in index order from +0.0):
//                                                     S(g)[i], S(g*g)[i]
//
// With NoGrad, every expression of the loop is the one Keras evaluates on a row its densified
// gradient holds +0.0 for (e.g. m + (0 - m) * (1 - beta_1)), so a sparse update computes every
// row in the same loop as a dense one.
#pragma once

#include "common.hpp"
#include "half.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

template <class T, class P = T>
struct DenseGrad {
  const P* PYOPTIM_RESTRICT g;
  T operator()(index_t i) const { return load<T>(g[i]); }
  T square(index_t, T gi) const { return gi * gi; }
};

template <class T>
struct NoGrad {
  T operator()(index_t) const { return T(0); }
  T square(index_t, T) const { return T(0); }
};

template <class T>
struct SummedGrad {
  const T* PYOPTIM_RESTRICT g;   // S(g), the sum of the slices hitting the row
  const T* PYOPTIM_RESTRICT g2;  // S(g * g), each slice squared before the sum (Adam)
  T operator()(index_t i) const { return g[i]; }
  T square(index_t i, T) const { return g2[i]; }
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
