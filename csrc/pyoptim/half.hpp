// Half-precision parameters (float16, bfloat16) with float32 arithmetic and state,
// as mixed-precision kernels do: an element is widened to float32, updated there
// with the float32 kernel's arithmetic, and rounded back to nearest-even when
// stored.  The conversions are branch-free integer/float code (after Marat
// Dukhan's FP16 library) so the loops vectorise on every instruction set.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.hpp"

namespace pyoptim {

// Storage types: 16 bits each, distinct so that templates can tell them apart.
struct Float16 {
  std::uint16_t bits;
};
struct BFloat16 {
  std::uint16_t bits;
};

inline namespace PYOPTIM_ISA {

inline float f32_from_bits(std::uint32_t w) {
  float f;
  std::memcpy(&f, &w, sizeof f);
  return f;
}
inline std::uint32_t f32_to_bits(float f) {
  std::uint32_t w;
  std::memcpy(&w, &f, sizeof w);
  return w;
}

inline float widen(Float16 h) {
  const std::uint32_t w = static_cast<std::uint32_t>(h.bits) << 16;
  const std::uint32_t sign = w & 0x80000000u;
  const std::uint32_t two_w = w + w;
  const float normalized = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
  const std::uint32_t magnitude =
      two_w < (1u << 27) ? f32_to_bits(denormalized) : f32_to_bits(normalized);
  return f32_from_bits(sign | magnitude);
}

inline Float16 narrow_f16(float f) {
  float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const std::uint32_t w = f32_to_bits(f);
  const std::uint32_t shl1_w = w + w;
  const std::uint32_t sign = w & 0x80000000u;
  std::uint32_t bias = shl1_w & 0xFF000000u;
  bias = bias < 0x71000000u ? 0x71000000u : bias;
  base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
  const std::uint32_t bits = f32_to_bits(base);
  const std::uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const std::uint32_t mantissa_bits = bits & 0x00000FFFu;
  const std::uint32_t nonsign = exp_bits + mantissa_bits;
  return {static_cast<std::uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign))};
}

inline float widen(BFloat16 h) { return f32_from_bits(static_cast<std::uint32_t>(h.bits) << 16); }

inline BFloat16 narrow_bf16(float f) {
  const std::uint32_t w = f32_to_bits(f);
  const bool nan = (w & 0x7FFFFFFFu) > 0x7F800000u;
  const std::uint32_t rounded = w + 0x7FFFu + ((w >> 16) & 1u);  // to nearest, ties to even
  return {static_cast<std::uint16_t>(nan ? ((w >> 16) | 0x0040u) : (rounded >> 16))};
}

// load<T>(stored) widens to the arithmetic type; store<P>(value) narrows to storage.
template <class T>
inline T load(T x) {
  return x;
}
template <class T>
inline T load(Float16 x) {
  return widen(x);
}
template <class T>
inline T load(BFloat16 x) {
  return widen(x);
}

template <class P, class T>
inline P store(T x) {
  if constexpr (std::is_same_v<P, Float16>) {
    return narrow_f16(x);
  } else if constexpr (std::is_same_v<P, BFloat16>) {
    return narrow_bf16(x);
  } else {
    return x;
  }
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
