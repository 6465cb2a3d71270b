// Fuzz of the op's sparse-gradient pass (pyoptim/keras/_op/sparse_rows.hpp and, for the element-wise
// kernels of csrc/pyoptim/elementwise_kernels.hpp, elementwise_rows.hpp): random tables,
// random index sets (empty, one row repeated, duplicates, unsorted, sorted, out of range),
// random block boundaries (anywhere, also inside rows), every optimizer variant in float32 and
// float64.  Each result must equal, bit for bit in every element of the table and its slots, a
// scalar transcription of Keras' semantics written here independently (densify the slices per
// row in index order, then the element formulas); an index outside [0, rows) must be reported
// at its position before anything is touched.  Built with -fsanitize=address,undefined by
// tests/sanitize.sh (so any read or write outside a buffer aborts the run) and without by
// tests/test_sparse.py.
//
//   g++ -std=c++17 -O1 -ffp-contract=off -fno-math-errno -I csrc -I pyoptim/keras/_op \
//       tests/cross/sparse_fuzz.cpp -o sparse_fuzz && ./sparse_fuzz [trials] [seed]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "elementwise_rows.hpp"
#include "pyoptim/elementwise_kernels.hpp"
#include "sparse_rows.hpp"

using pyoptim::index_t;
using pyoptim_sparse::SparseGrad;

namespace {

std::mt19937_64 rng;
int failures = 0;

index_t Uniform(index_t lo, index_t hi) {  // [lo, hi]
  return std::uniform_int_distribution<index_t>(lo, hi)(rng);
}

template <class T>
std::vector<T> Normal(index_t n, double zero_fraction) {
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit;
  std::vector<T> out(n);
  for (auto& x : out) x = unit(rng) < zero_fraction ? T(0) : static_cast<T>(normal(rng));
  return out;
}

template <class T>
bool SameBits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Runs f(b, e) over [0, n) in random blocks, in a random order of blocks.
template <class F>
void RandomBlocks(index_t n, const F& f) {
  std::vector<std::pair<index_t, index_t>> blocks;
  for (index_t b = 0; b < n;) {
    const index_t e = std::min(n, b + Uniform(1, std::max<index_t>(1, n / 3 + 1)));
    blocks.emplace_back(b, e);
    b = e;
  }
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (auto [b, e] : blocks) f(b, e);
}

template <class T>
struct Problem {
  index_t rows, cols, n;
  std::vector<std::int64_t> idx;
  std::vector<T> values;
  // Keras' densification, per row: the slices summed in index order from +0.0.
  std::vector<T> Densify(T (*f)(T, T), T scale) const {
    std::vector<T> out(rows * cols, T(0));
    for (index_t k = 0; k < n; ++k)
      for (index_t c = 0; c < cols; ++c)
        out[idx[k] * cols + c] = out[idx[k] * cols + c] + f(values[k * cols + c], scale);
    return out;
  }
  std::vector<bool> Hit() const {
    std::vector<bool> hit(rows, false);
    for (auto r : idx) hit[r] = true;
    return hit;
  }
};

template <class T> T Id(T x, T) { return x; }
template <class T> T Sq(T x, T) { return x * x; }
template <class T> T ScaledSq(T x, T s) { return s * (x * x); }
template <class T> T Scaled(T x, T s) { return s * x; }

void Check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    if (failures <= 20) std::printf("MISMATCH %s\n", what.c_str());
  }
}

template <class T>
void FuzzSgd(const Problem<T>& pr, const SparseGrad<T>& grouped, const std::string& tag) {
  for (int mode = 0; mode < 3; ++mode) {
    for (int decay = 0; decay < 2; ++decay) {
      SparseGrad<T> s = grouped;
      pyoptim::SgdCoeffs<T> unit{T(1), T(0.9), decay ? T(0.01) : T(0), T(0.05)};
      std::vector<T> p = Normal<T>(pr.rows * pr.cols, 0.1), m = Normal<T>(pr.rows * pr.cols, 0.1);
      std::vector<T> rp = p, rm = m;
      // Reference.
      if (decay)
        for (auto& x : rp) x = x - x * unit.weight_decay * unit.decay_lr;
      if (mode == 0) {
        for (index_t k = 0; k < pr.n; ++k)
          for (index_t c = 0; c < pr.cols; ++c)
            rp[pr.idx[k] * pr.cols + c] = rp[pr.idx[k] * pr.cols + c] - pr.values[k * pr.cols + c];
      } else {
        const std::vector<T> g = pr.Densify(Id<T>, T(0));
        for (index_t i = 0; i < pr.rows * pr.cols; ++i) {
          rm[i] = rm[i] * unit.momentum - g[i] * T(1);
          rp[i] = mode == 2 ? rp[i] + (rm[i] * unit.momentum - g[i] * T(1)) : rp[i] + rm[i];
        }
      }
      // The pass.
      const index_t extent = s.Extent(pyoptim_sparse::SgdHitRowsOnly(mode != 0, decay));
      RandomBlocks(extent, [&](index_t b, index_t e) {
        using M = pyoptim::SgdMode;
        T* mp = mode ? m.data() : nullptr;
        if (mode == 0 && decay) pyoptim_sparse::SgdRange<T, M::kPlain, true>(p.data(), mp, s, b, e, unit);
        if (mode == 0 && !decay) pyoptim_sparse::SgdRange<T, M::kPlain, false>(p.data(), mp, s, b, e, unit);
        if (mode == 1 && decay) pyoptim_sparse::SgdRange<T, M::kMomentum, true>(p.data(), mp, s, b, e, unit);
        if (mode == 1 && !decay) pyoptim_sparse::SgdRange<T, M::kMomentum, false>(p.data(), mp, s, b, e, unit);
        if (mode == 2 && decay) pyoptim_sparse::SgdRange<T, M::kNesterov, true>(p.data(), mp, s, b, e, unit);
        if (mode == 2 && !decay) pyoptim_sparse::SgdRange<T, M::kNesterov, false>(p.data(), mp, s, b, e, unit);
      });
      const std::string what = tag + " sgd mode " + std::to_string(mode) + " decay " + std::to_string(decay);
      Check(SameBits(p, rp), what + " var");
      Check(SameBits(m, rm), what + " momentum");
    }
  }
}

template <class T, bool kC, bool kM, bool kEpsFirst, bool kDecay>
void FuzzRmsprop(const Problem<T>& pr, const SparseGrad<T>& grouped, const std::string& tag, T eps) {
  SparseGrad<T> s = grouped;
  const pyoptim::RmspropCoeffs<T> c{T(0.01), T(0.9), T(1) - T(0.9), eps, T(0.5),
                                    kDecay ? T(0.01) : T(0), T(0.01)};
  const index_t size = pr.rows * pr.cols;
  std::vector<T> p = Normal<T>(size, 0.1), mom = Normal<T>(size, 0.2);
  std::vector<T> v = Normal<T>(size, 0.3), avg = Normal<T>(size, 0.3);
  for (auto& x : v) x = x * x;  // velocities are squares; some zero (eps = 0: 0 / 0)
  std::vector<T> rp = p, rv = v, rmom = mom, ravg = avg;
  // Reference.
  const std::vector<T> sv = pr.Densify(ScaledSq<T>, c.one_minus_rho);
  const std::vector<T> sa = pr.Densify(Scaled<T>, c.one_minus_rho);
  const std::vector<bool> hit = pr.Hit();
  for (index_t i = 0; i < size; ++i) {
    const index_t r = i / pr.cols, col = i % pr.cols;
    T pi = rp[i];
    if (kDecay) pi = pi - pi * c.weight_decay * c.decay_lr;
    rv[i] = c.rho * rv[i] + sv[i];
    T a = T(0);
    if (kC) a = ravg[i] = c.rho * ravg[i] + sa[i];
    const T d = !kC ? rv[i] + c.epsilon : kEpsFirst ? (c.epsilon - a * a) + rv[i] : (rv[i] - a * a) + c.epsilon;
    const T sq = std::sqrt(d);
    if (kM) {
      T sum = hit[r] ? T(0) : (c.lr * T(0)) / sq;  // Keras: 0 / sqrt(d) outside the batch
      for (index_t k = 0; k < pr.n; ++k)
        if (pr.idx[k] == r) sum = sum + (c.lr * pr.values[k * pr.cols + col]) / sq;
      rmom[i] = c.momentum * rmom[i] + sum;
      pi = pi - rmom[i];
    } else if (!hit[r]) {
      pi = pi - (c.lr * T(0)) / sq;
    } else {
      for (index_t k = 0; k < pr.n; ++k)
        if (pr.idx[k] == r) pi = pi - (c.lr * pr.values[k * pr.cols + col]) / sq;
    }
    rp[i] = pi;
  }
  // The pass.
  RandomBlocks(s.Extent(false), [&](index_t b, index_t e) {
    pyoptim_sparse::RmspropRange<T, kC, kM, kEpsFirst, kDecay>(p.data(), s, v.data(),
                                                             kM ? mom.data() : nullptr,
                                                             kC ? avg.data() : nullptr, b, e, c);
  });
  const std::string what = tag + " rmsprop centered " + std::to_string(kC) + " momentum " +
                           std::to_string(kM) + " eps_first " + std::to_string(kEpsFirst) +
                           " decay " + std::to_string(kDecay);
  Check(SameBits(p, rp), what + " var");
  Check(SameBits(v, rv), what + " velocity");
  if (kM) Check(SameBits(mom, rmom), what + " momentum");
  if (kC) Check(SameBits(avg, ravg), what + " average");
}

template <class T, bool kAmsgrad, bool kDecay>
void FuzzAdam(const Problem<T>& pr, const SparseGrad<T>& grouped, const std::string& tag, bool lazy) {
  SparseGrad<T> s = grouped;
  const pyoptim::AdamCoeffs<T> c{T(0.0031), T(1) - T(0.9), T(1) - T(0.999), T(1e-7), T(0.001),
                                 kDecay ? T(0.04) : T(0)};
  const index_t size = pr.rows * pr.cols;
  std::vector<T> p = Normal<T>(size, 0.1), m = Normal<T>(size, 0.2), v = Normal<T>(size, 0.2);
  for (auto& x : v) x = x * x;
  std::vector<T> vhat = v;
  for (auto& x : vhat) x = x * T(1.5);
  std::vector<T> rp = p, rm = m, rv = v, rvhat = vhat;
  // Reference.
  const std::vector<T> g = pr.Densify(Id<T>, T(0));
  const std::vector<T> g2 = pr.Densify(Sq<T>, T(0));
  const std::vector<bool> hit = pr.Hit();
  for (index_t i = 0; i < size; ++i) {
    T pi = rp[i];
    if (kDecay) pi = pi - pi * c.weight_decay * c.lr;
    if (!lazy || hit[i / pr.cols]) {
      const T gsq = lazy ? g[i] * g[i] : g2[i];
      rm[i] = rm[i] + (g[i] - rm[i]) * c.one_minus_beta_1;
      rv[i] = rv[i] + (gsq - rv[i]) * c.one_minus_beta_2;
      T use = rv[i];
      if (kAmsgrad) use = rvhat[i] = pyoptim::max_propagate_nan(rvhat[i], rv[i]);
      pi = pi - (rm[i] * c.alpha) / (std::sqrt(use) + c.epsilon);
    }
    rp[i] = pi;
  }
  // The pass.
  RandomBlocks(s.Extent(pyoptim_sparse::AdamHitRowsOnly(lazy, kDecay)), [&](index_t b, index_t e) {
    pyoptim_sparse::AdamRange<T, kAmsgrad, kDecay>(p.data(), s, m.data(), v.data(),
                                                   kAmsgrad ? vhat.data() : nullptr, b, e, c, lazy);
  });
  const std::string what = tag + (lazy ? " lazyadam" : " adam") + " amsgrad " +
                           std::to_string(kAmsgrad) + " decay " + std::to_string(kDecay);
  Check(SameBits(p, rp), what + " var");
  Check(SameBits(m, rm), what + " m");
  Check(SameBits(v, rv), what + " v");
  if (kAmsgrad) Check(SameBits(vhat, rvhat), what + " v_hat");
}

// An element-wise kernel K (elementwise_rows.hpp's Range) in random blocks against the same
// kernel run row by row on whole arrays: kSummed, its update with each term densified by
// Problem::Densify (an independent sum per row); kRows, every row hit by its slices through
// sparse_row, the others by sparse_untouched (or left alone), each after the decay.  Random
// coefficients in (0.05, 0.95).  Checks the pass's plumbing (blocks inside rows, chunks of 256
// columns, the hit-rows-only extent) and, under the sanitizers, every access.
template <class K, class T, bool kDecay>
void FuzzElementwise(const Problem<T>& pr, const SparseGrad<T>& grouped, const std::string& tag) {
  std::uniform_real_distribution<double> unit(0.05, 0.95);
  T c[K::kCoeffs];
  for (auto& x : c) x = static_cast<T>(unit(rng));
  const pyoptim::ElementwiseCoeffs<T> coeffs{c, kDecay ? T(0.04) : T(0), T(0.3)};
  const index_t size = pr.rows * pr.cols;
  std::vector<T> p = Normal<T>(size, 0.1), rp;
  std::vector<std::vector<T>> slots(3, std::vector<T>(size, T(0)));
  for (int j = 0; j < K::kSlots; ++j) {
    slots[j] = Normal<T>(size, 0.2);
    for (auto& x : slots[j]) x = x * x;  // accumulators are non-negative
  }
  std::vector<std::vector<T>> rslots = slots;
  rp = p;
  // Reference.
  if constexpr (K::kSparse == pyoptim::SparseRule::kSummed) {
    std::vector<std::vector<T>> sums;
    pyoptim::SummedTerms<T> terms{};
    auto add_term = [&](auto k) {
      constexpr int kK = decltype(k)::value;
      std::vector<T> out(size, T(0));
      for (index_t q = 0; q < pr.n; ++q)
        for (index_t x = 0; x < pr.cols; ++x) {
          T& o = out[pr.idx[q] * pr.cols + x];
          o = o + K::template term<kK>(pr.values[q * pr.cols + x], c);
        }
      sums.push_back(std::move(out));
    };
    [&]<int... kK>(std::integer_sequence<int, kK...>) {
      (add_term(std::integral_constant<int, kK>{}), ...);
    }(std::make_integer_sequence<int, K::kTerms>{});
    for (int k = 0; k < K::kTerms; ++k) terms.s[k] = sums[k].data();
    const auto prepared = pyoptim::PreparedCoeffs<K, T>::make(c);
    for (index_t i = 0; i < size; ++i) {
      T pi = rp[i];
      if (kDecay) pi = pi - pi * coeffs.weight_decay * coeffs.decay_lr;
      rp[i] = K::template update<T, 0>(pi, terms, i, rslots[0].data(), rslots[1].data(),
                                       rslots[2].data(), prepared);
    }
  } else {
    const std::vector<bool> hit = pr.Hit();
    for (index_t r = 0; r < pr.rows; ++r) {
      T* row = rp.data() + r * pr.cols;
      T* s0 = rslots[0].data() + r * pr.cols;
      T* s1 = rslots[1].data() + r * pr.cols;
      T* s2 = rslots[2].data() + r * pr.cols;
      if (kDecay)
        for (index_t x = 0; x < pr.cols; ++x) row[x] = row[x] - row[x] * coeffs.weight_decay * coeffs.decay_lr;
      if (hit[r]) {
        std::vector<const T*> mine;
        for (index_t q = 0; q < pr.n; ++q)
          if (pr.idx[q] == r) mine.push_back(pr.values.data() + q * pr.cols);
        K::template sparse_row<T>(row, s0, s1, s2, mine.data(), static_cast<index_t>(mine.size()), 0,
                                  pr.cols, c);
      } else if constexpr (K::kSparseUntouched) {
        K::template sparse_untouched<T>(row, s0, s1, s2, 0, pr.cols, c);
      }
    }
  }
  // The pass.
  SparseGrad<T> s = grouped;
  T* sp[3] = {K::kSlots > 0 ? slots[0].data() : nullptr, K::kSlots > 1 ? slots[1].data() : nullptr,
              K::kSlots > 2 ? slots[2].data() : nullptr};
  RandomBlocks(s.Extent(pyoptim_elementwise::HitRowsOnly<K>(kDecay)), [&](index_t b, index_t e) {
    pyoptim_elementwise::Range<K, T, 0, kDecay, false>(p.data(), sp, nullptr, &s, b, e, size,
                                                       coeffs);
  });
  const std::string what = tag + " " + K::kName + " decay " + std::to_string(kDecay);
  Check(SameBits(p, rp), what + " var");
  for (int j = 0; j < K::kSlots; ++j) Check(SameBits(slots[j], rslots[j]), what + " slot " + std::to_string(j));
}

template <class T>
void Trial(int trial) {
  Problem<T> pr;
  pr.rows = Uniform(1, 40);
  pr.cols = Uniform(0, 7) == 0 ? Uniform(250, 600) : Uniform(1, 19);  // rows past a chunk of 256
  const index_t choices[] = {0, 1, 3, 17, 64, 300};
  pr.n = choices[Uniform(0, 5)];
  const int pattern = static_cast<int>(Uniform(0, 4));
  pr.idx.resize(pr.n);
  for (auto& r : pr.idx) {
    r = pattern == 1 ? 0 : Uniform(0, pr.rows - 1);
    if (pattern == 4 && Uniform(0, 9) == 0) r = Uniform(0, 1) ? -Uniform(1, 3) : pr.rows + Uniform(0, 3);
  }
  if (pattern == 1 && pr.n) std::fill(pr.idx.begin(), pr.idx.end(), Uniform(0, pr.rows - 1));
  if (pattern == 2) std::sort(pr.idx.begin(), pr.idx.end());
  if (pattern == 3) std::sort(pr.idx.rbegin(), pr.idx.rend());
  pr.values = Normal<T>(pr.n * pr.cols, 0.05);
  const std::string tag = std::string(sizeof(T) == 4 ? "float32" : "float64") + " trial " +
                          std::to_string(trial);

  // Both index dtypes; an index outside [0, rows) is reported at its position.
  index_t first_bad = -1;
  for (index_t q = 0; q < pr.n && first_bad < 0; ++q)
    if (pr.idx[q] < 0 || pr.idx[q] >= pr.rows) first_bad = q;
  std::vector<std::int32_t> idx32(pr.idx.begin(), pr.idx.end());
  SparseGrad<T> grouped, grouped32;
  const index_t bad = pyoptim_sparse::GroupRows<T, std::int64_t>(pr.idx.data(), pr.n, pr.rows, pr.cols,
                                                                  pr.values.data(), &grouped);
  const index_t bad32 = pyoptim_sparse::GroupRows<T, std::int32_t>(idx32.data(), pr.n, pr.rows, pr.cols,
                                                                    pr.values.data(), &grouped32);
  Check(bad == first_bad && bad32 == first_bad, tag + " bad index position");
  if (first_bad >= 0) return;

  FuzzSgd<T>(pr, grouped32, tag);
  const T eps = Uniform(0, 3) == 0 ? T(0) : T(1e-7);  // eps = 0: zero denominators (NaN rule)
  FuzzRmsprop<T, false, false, false, false>(pr, grouped, tag, eps);
  FuzzRmsprop<T, false, true, false, true>(pr, grouped, tag, eps);
  FuzzRmsprop<T, true, false, false, true>(pr, grouped, tag, eps);
  FuzzRmsprop<T, true, true, false, false>(pr, grouped, tag, eps);
  FuzzRmsprop<T, true, true, true, false>(pr, grouped, tag, eps);
  FuzzRmsprop<T, true, false, true, true>(pr, grouped, tag, eps);
  FuzzRmsprop<T, true, false, true, false>(pr, grouped, tag, eps);
#define PYOPTIM_FUZZ(K)                                           \
  FuzzElementwise<pyoptim::K, T, false>(pr, grouped32, tag);     \
  FuzzElementwise<pyoptim::K, T, true>(pr, grouped, tag);
  PYOPTIM_ELEMENTWISE_KERNELS(PYOPTIM_FUZZ)
#undef PYOPTIM_FUZZ
  for (bool lazy : {false, true}) {
    FuzzAdam<T, false, false>(pr, grouped, tag, lazy);
    FuzzAdam<T, true, false>(pr, grouped, tag, lazy);
    FuzzAdam<T, false, true>(pr, grouped, tag, lazy);
    FuzzAdam<T, true, true>(pr, grouped, tag, lazy);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int trials = argc > 1 ? std::atoi(argv[1]) : 400;
  rng.seed(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20261130);
  for (int t = 0; t < trials; ++t) {
    Trial<float>(t);
    Trial<double>(t);
  }
  std::printf("sparse_fuzz: %d trials x 2 dtypes, %d mismatches\n", trials, failures);
  return failures == 0 ? 0 : 1;
}
