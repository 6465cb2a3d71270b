// Runs a range function over a list of segments, in one OpenMP parallel region
// when the total is large enough.  The list is treated as one virtual array; each
// thread takes one contiguous, cache-line aligned share of it (static schedule).
// Every element is computed by the same code whatever thread runs it, so results
// do not depend on the number of threads.
#pragma once

#include <algorithm>
#include <cstddef>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "segments.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

// f(const Segment&, index_t begin, index_t end) updates elements [begin, end).
template <class F>
inline void for_each_range(const Segment* segs, std::size_t nseg, int threads, F&& f) {
  index_t total = 0;
  for (std::size_t k = 0; k < nseg; ++k) total += segs[k].n;
  const index_t max_useful = std::max<index_t>(1, total / (kParallelMinElements / 2));
  const int nt = static_cast<int>(std::min<index_t>(threads, max_useful));
#ifdef _OPENMP
  if (nt > 1 && total >= kParallelMinElements) {
#pragma omp parallel num_threads(nt)
    {
      const index_t nth = omp_get_num_threads();
      const index_t tid = omp_get_thread_num();
      index_t share = (total + nth - 1) / nth;
      share = (share + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
      const index_t lo = std::min(total, tid * share);
      const index_t hi = std::min(total, lo + share);
      index_t offset = 0;
      for (std::size_t k = 0; k < nseg && offset < hi; ++k) {
        const index_t b = std::max(lo, offset), e = std::min(hi, offset + segs[k].n);
        if (b < e) f(segs[k], b - offset, e - offset);
        offset += segs[k].n;
      }
    }
    return;
  }
#else
  (void)nt;
#endif
  for (std::size_t k = 0; k < nseg; ++k) {
    if (segs[k].n > 0) f(segs[k], index_t{0}, segs[k].n);
  }
}

// f(const QuantSegment&, index_t first_block, index_t end_block) over the blocks of every
// segment (a segment of n elements has ceil(n / block) blocks, the last one possibly short),
// in one parallel region when the total is large enough.  Each thread takes a contiguous share
// of whole blocks, so every block is computed by one thread with the same code.
template <class F>
inline void for_each_block(const QuantSegment* segs, std::size_t nseg, index_t block, int threads,
                           F&& f) {
  index_t total = 0, elements = 0;
  for (std::size_t k = 0; k < nseg; ++k) {
    total += (segs[k].n + block - 1) / block;
    elements += segs[k].n;
  }
  const index_t max_useful = std::max<index_t>(1, elements / (kParallelMinElements / 2));
  const int nt = static_cast<int>(std::min<index_t>({static_cast<index_t>(threads), max_useful, std::max<index_t>(total, 1)}));
#ifdef _OPENMP
  if (nt > 1 && elements >= kParallelMinElements) {
#pragma omp parallel num_threads(nt)
    {
      const index_t nth = omp_get_num_threads();
      const index_t tid = omp_get_thread_num();
      const index_t share = (total + nth - 1) / nth;
      const index_t lo = std::min(total, tid * share);
      const index_t hi = std::min(total, lo + share);
      index_t offset = 0;
      for (std::size_t k = 0; k < nseg && offset < hi; ++k) {
        const index_t nb = (segs[k].n + block - 1) / block;
        const index_t b = std::max(lo, offset), e = std::min(hi, offset + nb);
        if (b < e) f(segs[k], b - offset, e - offset);
        offset += nb;
      }
    }
    return;
  }
#else
  (void)nt;
#endif
  for (std::size_t k = 0; k < nseg; ++k) {
    const index_t nb = (segs[k].n + block - 1) / block;
    if (nb > 0) f(segs[k], index_t{0}, nb);
  }
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
