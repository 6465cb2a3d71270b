// Every element-wise kernel (see elementwise.hpp), once: its header and its line X(struct).
// The NumPy core's table (kernels_isa.cpp, dispatch), its binding and the TensorFlow op take
// their kernels from this list; adding an optimizer is its header, its line here and its
// Python classes.
#pragma once

#include "adadelta.hpp"
#include "adagrad.hpp"
#include "adamax.hpp"
#include "ftrl.hpp"
#include "lamb.hpp"
#include "lion.hpp"
#include "nadam.hpp"

#define PYOPTIM_ELEMENTWISE_KERNELS(X) \
  X(Adadelta)                          \
  X(Adagrad)                           \
  X(Adamax)                            \
  X(Ftrl)                              \
  X(Lamb)                              \
  X(Lion)                              \
  X(Nadam)
