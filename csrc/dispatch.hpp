// Choice of the instruction set whose kernels serve the calls.
#pragma once

#include <string>
#include <vector>

#include "pyoptim/segments.hpp"

namespace pyoptim {

struct IsaEntry {
  const char* name;
  bool supported;  // built into this module and run by this CPU
};

// Every instruction set this module knows, lowest first.
std::vector<IsaEntry> isa_list();
// The table in use; chosen at import (best supported, or PYOPTIM_ISA).
const KernelTable& active_kernels();
// Switch to `name`; throws std::invalid_argument if it is not supported here.
void select_isa(const std::string& name);
// Applies the PYOPTIM_ISA environment variable, if set; returns a warning text
// (empty when there is nothing to say).
std::string select_isa_from_environment();

}  // namespace pyoptim
