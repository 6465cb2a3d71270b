// Sparse gradients (tf.IndexedSlices: n slices of `cols` values and their rows) as
// keras.optimizers applies them, for the op's one pass (pyoptim_tf_ops.cc).  TensorFlow-free, so
// that tests/cross/sparse_fuzz.cpp runs it under AddressSanitizer with random index sets.
//
// Keras' semantics (keras/src/optimizers/{sgd,rmsprop,adam}.py with
// keras/src/backend/tensorflow/sparse.py): an element-wise op on an IndexedSlices acts on its
// values; adding it to a dense tensor densifies it with unsorted_segment_sum, the slices of a row
// summed in index order from +0.0 (S below); an assign_sub of an IndexedSlices is a scatter_sub.
//
//   every row (one pass over the table, the slices' sums folded in; no dense gradient built):
//     Adam          g = S(g), g^2 = S(g * g): each slice squared before the sum
//     SGD momentum  S(g * lr) in the place of g * lr (the op gets Keras' g * lr node)
//     RMSprop       v, a with S((1 - rho) g^2), S((1 - rho) g); each slice's increment
//                   (lr * g) / sqrt(d); momentum: mom with S(inc); else inc scattered (the
//                   other rows' parameters are read only where Keras' 0 / sqrt(d) is NaN)
//   the rows present only (work proportional to the slices):
//     SGD without momentum  scatter_sub(var, g * lr), slice after slice (unless it decays)
//     LazyAdam              Adam on the rows present with g = S(g), g^2 = S(g)^2 (unless it decays)
//
// A row no slice hits runs the dense kernel with a zero gradient (grad.hpp's NoGrad): the same
// expressions Keras evaluates on the +0.0 of its densified gradient.
#pragma once

#include <algorithm>
#include <vector>

#include "pyoptim/adam.hpp"
#include "pyoptim/rmsprop.hpp"
#include "pyoptim/sgd.hpp"

namespace pyoptim_sparse {

using pyoptim::index_t;

// A sparse gradient of a variable seen as [rows, cols]: its slices grouped by row.
template <class T>
struct SparseGrad {
  index_t rows = 0, cols = 0;
  std::vector<index_t> row;     // the distinct rows hit, ascending
  std::vector<index_t> start;   // row[j]'s slices are slice[start[j] .. start[j + 1])
  std::vector<const T*> slice;  // each slice's values, by row, in index order within a row

  index_t hit_rows() const { return static_cast<index_t>(row.size()); }

  // Runs body(begin, end, s1, s2) over columns [lo, hi) of hit row j, in chunks, with
  // s1[c - begin] = +0.0 + f1(first slice of the row)[c] + ... in index order (as
  // unsorted_segment_sum adds them), and s2 likewise with f2.  The sums are made where the pass
  // needs them, on the thread that runs that part of the pass, from the slices themselves.
  template <class F1, class F2, class Body>
  void RowSums(index_t j, index_t lo, index_t hi, const F1& f1, const F2& f2,
               const Body& body) const {
    constexpr index_t kChunk = 256;
    T s1[kChunk], s2[kChunk];
    for (index_t b = lo; b < hi; b += kChunk) {
      const index_t w = std::min(hi - b, kChunk);
      for (index_t c = 0; c < w; ++c) s1[c] = s2[c] = T(0);
      for (index_t q = start[j]; q < start[j + 1]; ++q) {
        const T* g = slice[q] + b;
        for (index_t c = 0; c < w; ++c) {
          s1[c] = s1[c] + f1(g[c]);
          s2[c] = s2[c] + f2(g[c]);
        }
      }
      body(b, b + w, s1, s2);
    }
  }

  // Runs gap(begin, end) over the runs of elements [lo, hi) of the [rows, cols] table that no
  // slice hits, and hit(j, offset, begin, end) over each hit row's part (offset: where row[j]
  // starts; begin and end relative to it), in order.
  template <class Gap, class Hit>
  void Walk(index_t lo, index_t hi, const Gap& gap, const Hit& hit) const {
    size_t j = std::lower_bound(row.begin(), row.end(), lo / cols) - row.begin();
    index_t pos = lo;
    for (; j < row.size() && row[j] * cols < hi; ++j) {
      const index_t offset = row[j] * cols;
      const index_t b = std::max(lo, offset), e = std::min(hi, offset + cols);
      if (pos < b) gap(pos, b);
      hit(static_cast<index_t>(j), offset, b - offset, e - offset);
      pos = e;
    }
    if (pos < hi) gap(pos, hi);
  }

  // Runs hit(j, offset, begin, end) over the parts of the hit rows that elements [lo, hi) of
  // the hit rows laid end to end (hit_rows() * cols elements) cover.
  template <class Hit>
  void WalkHitRows(index_t lo, index_t hi, const Hit& hit) const {
    for (index_t j = lo / cols; j < hit_rows() && j * cols < hi; ++j) {
      const index_t b = std::max(lo, j * cols) - j * cols;
      const index_t e = std::min(hi, (j + 1) * cols) - j * cols;
      hit(j, row[j] * cols, b, e);
    }
  }

  // How many elements a pass covers: the table's, or the hit rows' when only they change.
  index_t Extent(bool hit_rows_only) const { return (hit_rows_only ? hit_rows() : rows) * cols; }
};

// Groups n slices (slice q: values + q * cols, row idx[q]) of a [rows, cols] variable.  Every
// index is checked first: returns the position of the first one outside [0, rows) (out is then
// unusable), or -1.
template <class T, class Index>
index_t GroupRows(const Index* idx, index_t n, index_t rows, index_t cols, const T* values,
                  SparseGrad<T>* out) {
  std::vector<index_t> at(n);
  for (index_t q = 0; q < n; ++q) {
    const index_t r = static_cast<index_t>(idx[q]);
    if (r < 0 || r >= rows) return q;
    at[q] = r;
  }
  out->rows = rows;
  out->cols = cols;
  std::vector<index_t> order(n);
  for (index_t q = 0; q < n; ++q) order[q] = q;
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return at[a] < at[b]; });
  out->row.clear();
  out->start.clear();
  out->slice.resize(n);
  for (index_t q = 0; q < n; ++q) {
    out->slice[q] = values + order[q] * cols;
    if (q == 0 || at[order[q]] != at[order[q - 1]]) {
      out->row.push_back(at[order[q]]);
      out->start.push_back(q);
    }
  }
  out->start.push_back(n);
  return -1;
}

// --- SGD --------------------------------------------------------------------------------------

inline bool SgdHitRowsOnly(bool momentum, bool decay) {
  return !momentum && !decay;
}

// Elements [b, e) of the pass (see SgdHitRowsOnly); `unit`: the update's lr is 1 (the slices
// hold g * lr), the decay's is its own.
template <class T, pyoptim::SgdMode kMode, bool kDecay>
void SgdRange(T* p, T* m, const SparseGrad<T>& s, index_t b, index_t e,
              const pyoptim::SgdCoeffs<T>& unit) {
  using pyoptim::NoGrad;
  if constexpr (kMode != pyoptim::SgdMode::kPlain) {
    s.Walk(
        b, e,
        [&](index_t lo, index_t hi) {
          pyoptim::sgd_loop<T, kMode, kDecay>(p, NoGrad<T>{}, m, lo, hi, unit);
        },
        [&](index_t j, index_t off, index_t lo, index_t hi) {
          s.RowSums(  // S(g * lr): the slices hold g * lr
              j, lo, hi, [](T x) { return x; }, [](T) { return T(0); },
              [&](index_t b, index_t e, const T* sum, const T*) {
                pyoptim::sgd_loop<T, kMode, kDecay>(p + off + b, pyoptim::DenseGrad<T>{sum},
                                                    m + off + b, 0, e - b, unit);
              });
        });
  } else {
    // Keras: the decay (every row), then scatter_sub(var, g * lr) one slice after another.
    auto scatter = [&](index_t j, index_t off, index_t lo, index_t hi) {
      T* row = p + off;
      if constexpr (kDecay) {
        for (index_t i = lo; i < hi; ++i) row[i] = row[i] - row[i] * unit.weight_decay * unit.decay_lr;
      }
      for (index_t q = s.start[j]; q < s.start[j + 1]; ++q) {
        const T* v = s.slice[q];
        for (index_t i = lo; i < hi; ++i) row[i] = row[i] - v[i];
      }
    };
    if constexpr (kDecay) {
      s.Walk(
          b, e,
          [&](index_t lo, index_t hi) {
            pyoptim::sgd_loop<T, kMode, true>(p, NoGrad<T>{}, m, lo, hi, unit);
          },
          scatter);
    } else {
      s.WalkHitRows(b, e, scatter);
    }
  }
}

// --- RMSprop ----------------------------------------------------------------------------------

// Elements [b, e) of the table.  Keras' sparse arithmetic has no rsqrt rewrite inside
// tf.function (it gathers sqrt(d) before dividing); kEpsFirst is Grappler's centered
// (eps - a^2) + v.
template <class T, bool kC, bool kM, bool kEpsFirst, bool kDecay>
void RmspropRange(T* p, const SparseGrad<T>& s, T* v, T* mom, T* avg, index_t b, index_t e,
                  const pyoptim::RmspropCoeffs<T>& c) {
  s.Walk(
      b, e,
      [&](index_t lo, index_t hi) {
        if constexpr (!kM && !kDecay) {  // the parameter changes only where 0 / sqrt(d) is NaN
          pyoptim::rmsprop_unhit_loop<T, kC, kEpsFirst>(p, v, avg, lo, hi, c);
        } else {
          pyoptim::rmsprop_loop<T, kC, kM, kDecay, T, pyoptim::NoGrad<T>, kEpsFirst>(
              p, pyoptim::NoGrad<T>{}, v, mom, avg, lo, hi, c);
        }
      },
      [&](index_t j, index_t off, index_t lo, index_t hi) {
        const T omr = c.one_minus_rho;
        s.RowSums(  // S((1 - rho) g^2), S((1 - rho) g)
            j, lo, hi, [omr](T x) { return omr * (x * x); }, [omr](T x) { return omr * x; },
            [&](index_t b, index_t e, const T* sv, const T* sa) {
              pyoptim::rmsprop_sparse_row<T, kC, kM, kDecay, kEpsFirst>(
                  p + off + b, &s.slice[s.start[j]], s.start[j + 1] - s.start[j], b, sv, sa,
                  v + off + b, kM ? mom + off + b : nullptr, kC ? avg + off + b : nullptr, e - b,
                  c);
            });
      });
}

// --- Adam, LazyAdam ---------------------------------------------------------------------------

inline bool AdamHitRowsOnly(bool lazy, bool decay) {
  return lazy && !decay;
}

// Elements [b, e) of the pass (see AdamHitRowsOnly).
template <class T, bool kAmsgrad, bool kDecay>
void AdamRange(T* p, const SparseGrad<T>& s, T* m, T* v, T* vhat, index_t b, index_t e,
               const pyoptim::AdamCoeffs<T>& c, bool lazy) {
  // Keras: S(g) and S(g * g), each slice squared before the sum; LazyAdam: S(g) and S(g)^2.
  auto hit = [&](index_t j, index_t off, index_t lo, index_t hi) {
    s.RowSums(
        j, lo, hi, [](T x) { return x; }, [](T x) { return x * x; },
        [&](index_t b, index_t e, const T* sum, const T* sum2) {
          const index_t at = off + b;
          T* vh = kAmsgrad ? vhat + at : nullptr;
          if (lazy) {
            pyoptim::adam_loop<T, kAmsgrad, kDecay>(p + at, pyoptim::DenseGrad<T>{sum}, m + at,
                                                    v + at, vh, 0, e - b, c);
          } else {
            pyoptim::adam_loop<T, kAmsgrad, kDecay>(p + at, pyoptim::SummedGrad<T>{sum, sum2},
                                                    m + at, v + at, vh, 0, e - b, c);
          }
        });
  };
  if (AdamHitRowsOnly(lazy, kDecay)) {
    s.WalkHitRows(b, e, hit);
  } else if (lazy) {
    // The rows no slice hits only decay: p - p * wd * lr, the same expression as Adam's.
    const pyoptim::SgdCoeffs<T> decay_only{T(1), T(0), c.weight_decay, c.lr};
    s.Walk(
        b, e,
        [&](index_t lo, index_t hi) {
          pyoptim::sgd_loop<T, pyoptim::SgdMode::kPlain, true>(p, pyoptim::NoGrad<T>{}, nullptr, lo,
                                                               hi, decay_only);
        },
        hit);
  } else {
    s.Walk(
        b, e,
        [&](index_t lo, index_t hi) {
          pyoptim::adam_loop<T, kAmsgrad, kDecay>(p, pyoptim::NoGrad<T>{}, m, v, vhat, lo, hi, c);
        },
        hit);
  }
}

}  // namespace pyoptim_sparse
