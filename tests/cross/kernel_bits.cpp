// Prints one FNV-1a hash of the bits every kernel variant produces (and its count of NaNs), so that builds for
// different CPUs can be compared exactly (tests/cross_aarch64.sh: x86-64 under each instruction
// set it runs against aarch64 under qemu-user).  Links the core's own kernel and dispatch code
// (csrc/kernels_isa.cpp, csrc/dispatch.cpp), no Python.
//
//   kernel_bits [isa]    # isa: one of the built instruction sets (default: the best one)
//   kernel_bits --list   # the instruction sets this build has and this CPU runs
//
// Each variant updates 40009 elements (odd: SIMD tails for every vector width; above the
// threading threshold) for 3 steps, on one thread and on two (the results must not depend on
// it), from inputs made by a fixed integer generator (identical on every machine).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "dispatch.hpp"

namespace {

using pyoptim::index_t;
using pyoptim::Segment;

constexpr index_t kN = 40009;

struct Rng {
  std::uint64_t state;
  std::uint32_t next() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::uint32_t>(state >> 33);
  }
  // A value in (-scale, scale), built from integers only (exact everywhere).
  double value(double scale) { return (static_cast<double>(next()) / 2147483648.0 - 1.0) * scale; }
};

// NaN's sign and payload are the CPU's (x86's default NaN is negative, Arm's positive, and
// TensorFlow's results differ between them the same way), so every NaN is hashed as one
// pattern and counted: the comparison is "the same bits, NaNs in the same places".
bool is_nan(float x) { return std::isnan(x); }
bool is_nan(double x) { return std::isnan(x); }
bool is_nan(pyoptim::Float16 x) { return (x.bits & 0x7c00) == 0x7c00 && (x.bits & 0x03ff) != 0; }
bool is_nan(pyoptim::BFloat16 x) { return (x.bits & 0x7f80) == 0x7f80 && (x.bits & 0x007f) != 0; }

struct Hash {
  std::uint64_t h = 1469598103934665603ULL;
  long nans = 0;
  void bytes(const void* data, std::size_t size) {
    const auto* b = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  }
  template <class T>
  void add(const std::vector<T>& data) {
    for (const T& x : data) {
      if (is_nan(x)) {
        ++nans;
        bytes("NaN", 3);
      } else {
        bytes(&x, sizeof x);
      }
    }
  }
};

// Storage types: T itself, or 16-bit patterns made from the generator.
template <class P>
P make(Rng& rng, double scale) {
  if constexpr (std::is_same<P, pyoptim::Float16>::value) {
    const std::uint32_t r = rng.next();  // |x| about 0.125 .. 8, either sign
    return P{static_cast<std::uint16_t>(0x3000 + r % 0x1800 + ((r >> 16) & 1) * 0x8000)};
  } else if constexpr (std::is_same<P, pyoptim::BFloat16>::value) {
    const std::uint32_t r = rng.next();
    return P{static_cast<std::uint16_t>(0x3e00 + r % 0x0200 + ((r >> 16) & 1) * 0x8000)};
  } else {
    return static_cast<P>(rng.value(scale));
  }
}

// Runs `step(segment, threads)` three times on fresh buffers; hashes param and state.
template <class T, class P, class Step>
std::string run(unsigned seed, int threads, Step step) {
  Rng rng{seed};
  std::vector<P> p(kN), g(kN);
  std::vector<T> s0(kN), s1(kN), s2(kN);
  for (index_t i = 0; i < kN; ++i) {
    p[i] = make<P>(rng, 2.0);
    s0[i] = static_cast<T>(std::fabs(rng.value(0.5)));  // non-negative: velocities
    s1[i] = static_cast<T>(rng.value(0.1));
    s2[i] = static_cast<T>(std::fabs(rng.value(0.5)));
  }
  Hash hash;
  for (int k = 0; k < 3; ++k) {
    for (index_t i = 0; i < kN; ++i) g[i] = make<P>(rng, k == 1 ? 30.0 : 0.3);
    Segment seg{p.data(), g.data(), {s0.data(), s1.data(), s2.data()}, kN};
    step(seg, threads);
  }
  hash.add(p);
  hash.add(s0);
  hash.add(s1);
  hash.add(s2);
  char text[64];
  std::snprintf(text, sizeof text, "%016llx nan=%ld", static_cast<unsigned long long>(hash.h),
                hash.nans);
  return text;
}

// The 8-bit state kernels (adam8bit.hpp): random codes and scales, 3 steps, block 96 (40009 is
// not a multiple: a short last block); hashes param, codes and scales.
template <class T, class P>
std::string run8(unsigned seed, int threads, bool amsgrad, bool decay,
                 pyoptim::QuantKernelFn<T> fn, const pyoptim::AdamCoeffs<T>& c) {
  constexpr index_t kBlock = 96, kBlocks = (kN + kBlock - 1) / kBlock;
  Rng rng{seed};
  std::vector<P> p(kN), g(kN);
  std::vector<std::int8_t> m(kN);
  std::vector<std::uint8_t> v(kN), vh(kN);
  std::vector<T> sm(kBlocks), sv(kBlocks), svh(kBlocks);
  for (index_t i = 0; i < kN; ++i) {
    p[i] = make<P>(rng, 2.0);
    m[i] = static_cast<std::int8_t>(static_cast<int>(rng.next() % 255) - 127);
    v[i] = static_cast<std::uint8_t>(rng.next() % 256);
    vh[i] = static_cast<std::uint8_t>(rng.next() % 256);
  }
  for (index_t b = 0; b < kBlocks; ++b) {
    sm[b] = static_cast<T>(std::fabs(rng.value(0.1)));
    sv[b] = static_cast<T>(std::fabs(rng.value(0.5)));
    svh[b] = static_cast<T>(std::fabs(rng.value(0.5)));
  }
  for (int k = 0; k < 3; ++k) {
    for (index_t i = 0; i < kN; ++i) g[i] = make<P>(rng, k == 1 ? 30.0 : 0.3);
    const pyoptim::QuantSegment seg{p.data(),  g.data(),  m.data(),  v.data(),
                                    amsgrad ? vh.data() : nullptr,   sm.data(),
                                    sv.data(), amsgrad ? svh.data() : nullptr, kN};
    fn(&seg, 1, threads, c, kBlock, amsgrad, decay);
  }
  Hash hash;
  hash.add(p);
  hash.bytes(m.data(), m.size());
  hash.bytes(v.data(), v.size());
  hash.bytes(vh.data(), vh.size());
  hash.add(sm);
  hash.add(sv);
  hash.add(svh);
  char text[64];
  std::snprintf(text, sizeof text, "%016llx nan=%ld", static_cast<unsigned long long>(hash.h),
                hash.nans);
  return text;
}

template <class T, class P>
void adam8bit_variants(const char* type, pyoptim::QuantKernelFn<T> fn) {
  const T lr = static_cast<T>(0.01), wd = static_cast<T>(0.004);
  const T alpha = lr * std::sqrt(T(1) - static_cast<T>(0.999)) / (T(1) - static_cast<T>(0.9));
  const pyoptim::AdamCoeffs<T> c{alpha, static_cast<T>(1.0 - 0.9), static_cast<T>(1.0 - 0.999),
                                 static_cast<T>(1e-7), lr, wd};
  for (int decay = 0; decay < 2; ++decay) {
    for (int amsgrad = 0; amsgrad < 2; ++amsgrad) {
      const auto one = run8<T, P>(41 + amsgrad, 1, amsgrad != 0, decay != 0, fn, c);
      const auto two = run8<T, P>(41 + amsgrad, 2, amsgrad != 0, decay != 0, fn, c);
      std::printf("%s adam8bit amsgrad=%d decay=%d %s%s\n", type, amsgrad, decay, one.c_str(),
                  one == two ? "" : " THREADS-DIFFER");
    }
  }
}

template <class T, class P>
void all_variants(const char* type,
                  void (*sgd)(const Segment*, std::size_t, int, const pyoptim::SgdCoeffs<T>&,
                              pyoptim::SgdMode, bool),
                  void (*rms)(const Segment*, std::size_t, int, const pyoptim::RmspropCoeffs<T>&,
                              bool, bool, bool),
                  void (*adam)(const Segment*, std::size_t, int, const pyoptim::AdamCoeffs<T>&,
                               bool, bool)) {
  const T lr = static_cast<T>(0.01), wd = static_cast<T>(0.004);
  for (int decay = 0; decay < 2; ++decay) {
    for (int mode = 0; mode < 3; ++mode) {
      const pyoptim::SgdCoeffs<T> c{lr, static_cast<T>(0.9), wd, lr};
      auto step = [&](const Segment& s, int t) {
        sgd(&s, 1, t, c, static_cast<pyoptim::SgdMode>(mode), decay != 0);
      };
      const auto one = run<T, P>(11 + mode, 1, step), two = run<T, P>(11 + mode, 2, step);
      std::printf("%s sgd mode=%d decay=%d %s%s\n", type, mode, decay, one.c_str(),
                  one == two ? "" : " THREADS-DIFFER");
    }
    for (int variant = 0; variant < 4; ++variant) {
      const bool centered = variant & 1, momentum = variant & 2;
      const pyoptim::RmspropCoeffs<T> c{lr, static_cast<T>(0.9), static_cast<T>(1.0 - 0.9),
                                        static_cast<T>(1e-7), static_cast<T>(0.5), wd, lr};
      auto step = [&](const Segment& s, int t) { rms(&s, 1, t, c, centered, momentum, decay != 0); };
      const auto one = run<T, P>(23 + variant, 1, step), two = run<T, P>(23 + variant, 2, step);
      std::printf("%s rmsprop centered=%d momentum=%d decay=%d %s%s\n", type, centered,
                  momentum, decay, one.c_str(), one == two ? "" : " THREADS-DIFFER");
    }
    for (int amsgrad = 0; amsgrad < 2; ++amsgrad) {
      // alpha for step 1 with lr 0.01, beta_1 0.9, beta_2 0.999, as Keras (sqrt only: exact).
      const T alpha = lr * std::sqrt(T(1) - static_cast<T>(0.999)) / (T(1) - static_cast<T>(0.9));
      const pyoptim::AdamCoeffs<T> c{alpha, static_cast<T>(1.0 - 0.9), static_cast<T>(1.0 - 0.999),
                                     static_cast<T>(1e-7), lr, wd};
      auto step = [&](const Segment& s, int t) { adam(&s, 1, t, c, amsgrad != 0, decay != 0); };
      const auto one = run<T, P>(37 + amsgrad, 1, step), two = run<T, P>(37 + amsgrad, 2, step);
      std::printf("%s adam amsgrad=%d decay=%d %s%s\n", type, amsgrad, decay, one.c_str(),
                  one == two ? "" : " THREADS-DIFFER");
    }
  }
}

// Every element-wise kernel of the table (elementwise_kernels.hpp), each variant, with and
// without weight decay: coefficients in (0.05, 0.95) from the generator (a kernel's bits, not
// Keras' values, are what this compares).
template <class T, class P>
void elementwise_variants(const char* type, pyoptim::ElementwiseFn<T> pyoptim::ElementwiseEntry::*fn) {
  const pyoptim::KernelTable& kt = pyoptim::active_kernels();
  for (int k = 0; k < pyoptim::kElementwiseCount; ++k) {
    const pyoptim::ElementwiseEntry& e = kt.elementwise[k];
    Rng rng{101u + static_cast<unsigned>(k)};
    std::vector<T> coeffs(e.coeffs);
    for (auto& c : coeffs) c = static_cast<T>(0.5 + 0.45 * std::tanh(rng.value(1.0)));
    for (int variant = 0; variant < e.variants; ++variant) {
      for (int decay = 0; decay < 2; ++decay) {
        pyoptim::ElementwiseCoeffs<T> c{coeffs.data(), static_cast<T>(0.004), static_cast<T>(0.01)};
        auto step = [&](const Segment& s, int t) { (e.*fn)(&s, 1, t, c, variant, decay != 0); };
        const unsigned seed = 53u + 7u * static_cast<unsigned>(k) + static_cast<unsigned>(variant);
        const auto one = run<T, P>(seed, 1, step), two = run<T, P>(seed, 2, step);
        std::printf("%s %s variant=%d decay=%d %s%s\n", type, e.name, variant, decay, one.c_str(),
                    one == two ? "" : " THREADS-DIFFER");
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--list") == 0) {
    for (const auto& entry : pyoptim::isa_list())
      if (entry.supported) std::printf("%s\n", entry.name);
    return 0;
  }
  try {
    if (argc > 1) pyoptim::select_isa(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kernel_bits: %s\n", e.what());
    return 2;
  }
  const pyoptim::KernelTable& kt = pyoptim::active_kernels();
  std::fprintf(stderr, "kernel_bits: running the %s kernels\n", kt.isa);
  all_variants<float, float>("float32", kt.sgd_f32, kt.rmsprop_f32, kt.adam_f32);
  all_variants<double, double>("float64", kt.sgd_f64, kt.rmsprop_f64, kt.adam_f64);
  all_variants<float, pyoptim::Float16>("float16", kt.sgd_f16, kt.rmsprop_f16, kt.adam_f16);
  all_variants<float, pyoptim::BFloat16>("bfloat16", kt.sgd_bf16, kt.rmsprop_bf16, kt.adam_bf16);
  adam8bit_variants<float, float>("float32", kt.adam8bit_f32);
  adam8bit_variants<double, double>("float64", kt.adam8bit_f64);
  adam8bit_variants<float, pyoptim::Float16>("float16", kt.adam8bit_f16);
  adam8bit_variants<float, pyoptim::BFloat16>("bfloat16", kt.adam8bit_bf16);
  elementwise_variants<float, float>("float32", &pyoptim::ElementwiseEntry::f32);
  elementwise_variants<double, double>("float64", &pyoptim::ElementwiseEntry::f64);
  elementwise_variants<float, pyoptim::Float16>("float16", &pyoptim::ElementwiseEntry::f16);
  elementwise_variants<float, pyoptim::BFloat16>("bfloat16", &pyoptim::ElementwiseEntry::bf16);
  return 0;
}
