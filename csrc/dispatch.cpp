#include "dispatch.hpp"

#include <cstdlib>
#include <stdexcept>

namespace pyoptim {
// Defined in kernels_isa.cpp, once per instruction set built.
namespace baseline {
const KernelTable& kernel_table();
}
#ifdef PYOPTIM_HAVE_AVX2
namespace avx2 {
const KernelTable& kernel_table();
}
#endif
#ifdef PYOPTIM_HAVE_AVX512
namespace avx512 {
const KernelTable& kernel_table();
}
#endif

namespace {

struct Candidate {
  const char* name;
  const KernelTable* (*table)();
  bool (*cpu_has)();
};

bool always() { return true; }
#if defined(__x86_64__) || defined(__i386__)
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2"); }
// The avx512 build's flags (CMakeLists.txt): F, VL and BW.
bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw");
}
#endif

const std::vector<Candidate>& candidates() {
  static const std::vector<Candidate> list = {
      {"baseline", [] { return &baseline::kernel_table(); }, &always},
#ifdef PYOPTIM_HAVE_AVX2
      {"avx2", [] { return &avx2::kernel_table(); }, &cpu_has_avx2},
#endif
#ifdef PYOPTIM_HAVE_AVX512
      {"avx512", [] { return &avx512::kernel_table(); }, &cpu_has_avx512},
#endif
  };
  return list;
}

const KernelTable* best_table() {
  const KernelTable* best = nullptr;
  for (const auto& c : candidates())
    if (c.cpu_has()) best = c.table();
  return best;
}

const KernelTable* g_active = best_table();

}  // namespace

std::vector<IsaEntry> isa_list() {
  std::vector<IsaEntry> out;
  for (const auto& c : candidates()) out.push_back({c.name, c.cpu_has()});
  return out;
}

const KernelTable& active_kernels() { return *g_active; }

void select_isa(const std::string& name) {
  for (const auto& c : candidates()) {
    if (name == c.name) {
      if (!c.cpu_has())
        throw std::invalid_argument("instruction set '" + name + "' is not supported by this CPU");
      g_active = c.table();
      return;
    }
  }
  std::string known;
  for (const auto& c : candidates()) known += (known.empty() ? "" : ", ") + std::string(c.name);
  throw std::invalid_argument("unknown instruction set '" + name + "' (built: " + known + ")");
}

std::string select_isa_from_environment() {
  const char* env = std::getenv("PYOPTIM_ISA");
  if (env == nullptr || *env == '\0') return {};
  try {
    select_isa(env);
  } catch (const std::invalid_argument& e) {
    return std::string("PYOPTIM_ISA ignored: ") + e.what() + "; using '" + g_active->isa + "'";
  }
  return {};
}

}  // namespace pyoptim
