// TensorFlow custom ops that run pyoptim's kernels on resource variables, in
// place, the way TensorFlow's own ResourceApplyAdam does:
//
//   * every variable input is locked (MaybeLockVariableInputMutexesInOrder, in a
//     global order, so concurrent updates never deadlock);
//   * a buffer that a pending read still holds is copied first (PrepareToUpdateVariable,
//     as GetInputTensorFromVariable does: copy-on-write), so reads never observe a
//     half-done update; the copies are counted (PyoptimVariableCopies);
//   * the element loop is the range function from the shared kernel headers
//     csrc/pyoptim/{sgd,rmsprop,adam}.hpp (installed as
//     <site-packages>/pyoptim/include/pyoptim/), the very code the NumPy core runs;
//   * large tensors are split into cache-line aligned blocks shared by the calling
//     thread and helpers on TensorFlow's intra-op thread pool, so TensorFlow's thread
//     settings hold.
//
// Scalar coefficients (alpha, 1 - beta_1, ...) arrive as tensors of the variable's
// dtype, computed by the Python side with the same TensorFlow ops Keras uses, so
// the element-wise results equal keras.optimizers to the bit.
//
// Built on first use by pyoptim/keras/_build.py against the installed TensorFlow,
// with -O3 -ffp-contract=off -fno-math-errno (never -ffast-math).
#define EIGEN_USE_THREADS

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tensorflow/core/platform/blocking_counter.h"
#include "tensorflow/core/platform/threadpool.h"

#include "pyoptim/adam.hpp"
#include "pyoptim/rmsprop.hpp"
#include "pyoptim/segments.hpp"  // kParallelMinElements, kChunkAlign
#include "pyoptim/sgd.hpp"
#include "rmsprop_graph.hpp"

namespace tensorflow {
namespace pyoptim_tf {

using CPUDevice = Eigen::ThreadPoolDevice;
using pyoptim::index_t;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// How many times each kernel ran (all threads, all devices), for tests that must
// prove the fast path executed.  Relaxed atomics: one increment per op call.
std::atomic<int64_t> g_calls[3];  // sgd, rmsprop, adam
enum CallSlot { kSgd = 0, kRmsprop = 1, kAdam = 2 };
// How many variables (or slots) were copied before an update because a pending read still
// shared their buffer (TensorFlow's copy-on-write): a measure of lost time, see
// pyoptim.keras.variable_copies().
std::atomic<int64_t> g_copies{0};

// ---------------------------------------------------------------------------
// Op definitions.  The optional slots are lists of 0 or 1 resources, so one op
// serves every variant; the boolean variants are attributes.

absl::Status ScalarInputs(InferenceContext* c, int first, int count) {
  ShapeHandle unused;
  for (int i = first; i < first + count; ++i) {
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  }
  return absl::OkStatus();
}

REGISTER_OP("PyoptimApplySgd")
    .Input("var: resource")
    .Input("momentum_buffer: num_momentum * resource")
    .Input("learning_rate: T")
    .Input("momentum: T")
    .Input("grad: T")
    .Attr("T: {float, double}")
    .Attr("num_momentum: int >= 0")
    .Attr("nesterov: bool = false")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("num_momentum", &n));
      return ScalarInputs(c, 1 + n, 2);
    })
    .Doc(R"doc(
In place, as keras.optimizers.SGD.update_step (weight decay is applied by Keras before):
  no momentum:  var = var - grad * learning_rate
  momentum:     m = m * momentum - grad * learning_rate;  var = var + m
  Nesterov:     m as above;  var = var + (m * momentum - grad * learning_rate)
)doc");

REGISTER_OP("PyoptimApplyRmsprop")
    .Input("var: resource")
    .Input("velocity: resource")
    .Input("momentum_buffer: num_momentum * resource")
    .Input("average_grad: num_centered * resource")
    .Input("learning_rate: T")
    .Input("rho: T")
    .Input("one_minus_rho: T")
    .Input("epsilon: T")
    .Input("momentum: T")
    .Input("grad: T")
    .Attr("T: {float, double}")
    .Attr("num_momentum: int >= 0")
    .Attr("num_centered: int >= 0")
    .Attr("rsqrt_mul: bool = false")
    .Attr("epsilon_first: bool = false")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int nm, nc;
      TF_RETURN_IF_ERROR(c->GetAttr("num_momentum", &nm));
      TF_RETURN_IF_ERROR(c->GetAttr("num_centered", &nc));
      return ScalarInputs(c, 2 + nm + nc, 5);
    })
    .Doc(R"doc(
In place, as keras.optimizers.RMSprop.update_step (epsilon inside the square root):
  v = rho * v + (1 - rho) * grad^2
  centered: a = rho * a + (1 - rho) * grad;  d = (v - a^2) + epsilon;  else d = v + epsilon
  inc = (learning_rate * grad) / sqrt(d)
  momentum: mom = momentum * mom + inc;  var = var - mom;  else var = var - inc
As Keras' graph-mode arithmetic after Grappler (see rmsprop_graph.hpp):
  rsqrt_mul:     inc = (learning_rate * grad) * rsqrt(d), rsqrt as TensorFlow's Rsqrt kernel
  epsilon_first: centered d = (epsilon - a^2) + v
)doc");

REGISTER_OP("PyoptimApplyAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("v_hat: num_amsgrad * resource")
    .Input("alpha: T")
    .Input("one_minus_beta_1: T")
    .Input("one_minus_beta_2: T")
    .Input("epsilon: T")
    .Input("grad: T")
    .Attr("T: {float, double}")
    .Attr("num_amsgrad: int >= 0")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("num_amsgrad", &n));
      return ScalarInputs(c, 3 + n, 4);
    })
    .Doc(R"doc(
In place, as keras.optimizers.Adam.update_step, with
alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) computed by the caller:
  m = m + (grad - m) * (1 - beta_1)
  v = v + (grad^2 - v) * (1 - beta_2)
  AMSGrad: v_hat = max(v_hat, v), used instead of v below
  var = var - (m * alpha) / (sqrt(v) + epsilon)
)doc");

REGISTER_OP("PyoptimKernelCalls")
    .Output("calls: int64")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(3));
      return absl::OkStatus();
    })
    .Doc("How many times the SGD, RMSprop and Adam kernels ran in this process.");

REGISTER_OP("PyoptimVariableCopies")
    .Output("copies: int64")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape)
    .Doc("How many variables the ops copied before updating them (copy-on-write), in this process.");

// ---------------------------------------------------------------------------
// Shared helpers.

// Runs f(begin, end) over [0, n): on the calling thread when n is small, else in
// cache-line aligned blocks, about kBlocksPerThread per intra-op thread, that the calling
// thread and (threads - 1) helpers on TensorFlow's intra-op pool take one at a time until
// none is left (so TensorFlow's thread settings hold).  A helper that wakes up late, or a
// thread that the machine preempts, simply takes fewer blocks: the step does not wait for
// the slowest thread's fixed share.  Each element is computed by the same code whichever
// block holds it, so the result does not depend on the number of threads.
// Blocks start at multiples of kChunkAlign; graph-mode RMSprop relies on multiples of 8, where
// TensorFlow's float32 Rsqrt packets start (rmsprop_graph.hpp).
static_assert(pyoptim::kChunkAlign % 8 == 0, "blocks must start at multiples of 8 elements");
constexpr index_t kBlocksPerThread = 8;

// The blocks of one RunSharded call.  Shared with the helpers, which may start after the
// calling thread has returned: they then find no block left and never touch `f`.
struct SharedBlocks {
  SharedBlocks(index_t n, index_t block, const std::function<void(int64_t, int64_t)>* f)
      : n(n), block(block), count((n + block - 1) / block), f(f), left(count) {}

  // Takes and runs blocks until none is left.
  void Work() {
    for (;;) {
      const index_t b = next.fetch_add(1, std::memory_order_relaxed);
      if (b >= count) return;
      (*f)(b * block, std::min(n, (b + 1) * block));
      left.DecrementCount();
    }
  }

  const index_t n, block, count;
  const std::function<void(int64_t, int64_t)>* f;
  std::atomic<index_t> next{0};
  BlockingCounter left;  // blocks not yet finished
};

void RunSharded(OpKernelContext* ctx, index_t n,
                const std::function<void(int64_t, int64_t)>& f) {
  const DeviceBase::CpuWorkerThreads* wt = ctx->device()->tensorflow_cpu_worker_threads();
  const int threads = (wt != nullptr && wt->workers != nullptr) ? wt->num_threads : 1;
  if (threads <= 1 || n < pyoptim::kParallelMinElements) {
    if (n > 0) f(0, n);
    return;
  }
  // Blocks of at least kParallelMinElements / 2 elements, aligned.
  const index_t min_block = pyoptim::kParallelMinElements / 2;
  index_t block = std::max<index_t>(min_block, (n + threads * kBlocksPerThread - 1) /
                                                   (threads * kBlocksPerThread));
  block = (block + pyoptim::kChunkAlign - 1) / pyoptim::kChunkAlign * pyoptim::kChunkAlign;
  auto shared = std::make_shared<SharedBlocks>(n, block, &f);
  const index_t helpers = std::min<index_t>(threads, shared->count) - 1;
  for (index_t h = 0; h < helpers; ++h) {
    wt->workers->Schedule([shared] { shared->Work(); });
  }
  shared->Work();
  shared->left.Wait();
}

// The variables of one update, locked for the lifetime of this object.
template <class T>
class LockedVariables {
 public:
  LockedVariables(OpKernelContext* ctx, const std::vector<int>& inputs)
      : lock_(MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(ctx, /*do_lock=*/true,
                                                                 /*sparse=*/false, inputs)) {
    tensors_.resize(inputs.size());
    for (size_t k = 0; k < inputs.size(); ++k) {
      // GetInputTensorFromVariable for a resource input, counting the copy it makes when a
      // pending read still shares the buffer (or in copy-on-read mode).
      core::RefCountPtr<Var> var;
      status_ = LookupResource(ctx, HandleFromInput(ctx, inputs[k]), &var);
      if (!status_.ok()) return;
      const bool copy = var->copy_on_read_mode.load() || !var->tensor()->RefCountIsOne();
      if (copy && var->tensor()->IsInitialized()) g_copies.fetch_add(1, std::memory_order_relaxed);
      status_ = PrepareToUpdateVariable<CPUDevice, T>(ctx, var->tensor(), var->copy_on_read_mode.load());
      if (!status_.ok()) return;
      tensors_[k] = *var->tensor();
      const Tensor& t = tensors_[k];
      if (!t.IsInitialized()) {
        status_ = absl::FailedPreconditionError(
            absl::StrCat("pyoptim: variable input ", inputs[k], " is not initialized"));
        return;
      }
      if (t.dtype() != DataTypeToEnum<T>::value) {
        status_ = absl::InvalidArgumentError(absl::StrCat(
            "pyoptim: variable input ", inputs[k], " has dtype ", DataTypeString(t.dtype()),
            ", expected ", DataTypeString(DataTypeToEnum<T>::value)));
        return;
      }
    }
  }

  const absl::Status& status() const { return status_; }

  // Checks every variable has the gradient's shape and no two share a buffer
  // (the kernels take restrict pointers).
  absl::Status CheckAgainst(const Tensor& grad) const {
    for (size_t k = 0; k < tensors_.size(); ++k) {
      if (!tensors_[k].shape().IsSameSize(grad.shape())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pyoptim: variable ", k, " has shape ", tensors_[k].shape().DebugString(),
            " but the gradient has shape ", grad.shape().DebugString()));
      }
      for (size_t j = 0; j < k; ++j) {
        if (tensors_[k].NumElements() > 0 &&
            tensors_[k].tensor_data().data() == tensors_[j].tensor_data().data()) {
          return absl::InvalidArgumentError(
              "pyoptim: the variable and its optimizer slots must be distinct variables");
        }
      }
    }
    return absl::OkStatus();
  }

  T* data(size_t k) { return tensors_[k].template flat<T>().data(); }

 private:
  VariableInputLockHolder lock_;
  std::vector<Tensor> tensors_;
  absl::Status status_;
};

template <class T>
absl::Status ReadScalar(OpKernelContext* ctx, int input, const char* name, T* out) {
  const Tensor& t = ctx->input(input);
  if (!TensorShapeUtils::IsScalar(t.shape())) {
    return absl::InvalidArgumentError(
        absl::StrCat("pyoptim: ", name, " must be a scalar, got shape ", t.shape().DebugString()));
  }
  *out = t.scalar<T>()();
  return absl::OkStatus();
}

template <class T>
absl::Status ReadGrad(OpKernelContext* ctx, int input, const Tensor** out) {
  const Tensor& g = ctx->input(input);
  if (g.dtype() != DataTypeToEnum<T>::value) {
    return absl::InvalidArgumentError("pyoptim: gradient dtype differs from the variable's");
  }
  *out = &g;
  return absl::OkStatus();
}

std::vector<int> Range(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

// ---------------------------------------------------------------------------
// Kernels.

template <class T>
class ApplySgdOp : public OpKernel {
 public:
  explicit ApplySgdOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("num_momentum", &num_momentum_));
    OP_REQUIRES_OK(c, c->GetAttr("nesterov", &nesterov_));
    OP_REQUIRES(c, num_momentum_ <= 1,
                absl::InvalidArgumentError("pyoptim: num_momentum must be 0 or 1"));
  }

  void Compute(OpKernelContext* ctx) override {
    const int nvars = 1 + num_momentum_;
    LockedVariables<T> vars(ctx, Range(nvars));
    OP_REQUIRES_OK(ctx, vars.status());
    pyoptim::SgdCoeffs<T> c{};
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars, "learning_rate", &c.lr));
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars + 1, "momentum", &c.momentum));
    const Tensor* grad = nullptr;
    OP_REQUIRES_OK(ctx, ReadGrad<T>(ctx, nvars + 2, &grad));
    OP_REQUIRES_OK(ctx, vars.CheckAgainst(*grad));

    T* p = vars.data(0);
    T* m = num_momentum_ ? vars.data(1) : nullptr;
    const T* g = grad->flat<T>().data();
    const index_t n = grad->NumElements();
    if (num_momentum_ == 0) {
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        pyoptim::sgd_range<T, pyoptim::SgdMode::kPlain, false>(p, g, m, b, e, c);
      });
    } else if (nesterov_) {
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        pyoptim::sgd_range<T, pyoptim::SgdMode::kNesterov, false>(p, g, m, b, e, c);
      });
    } else {
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        pyoptim::sgd_range<T, pyoptim::SgdMode::kMomentum, false>(p, g, m, b, e, c);
      });
    }
    g_calls[kSgd].fetch_add(1, std::memory_order_relaxed);
  }

 private:
  int num_momentum_ = 0;
  bool nesterov_ = false;
};

template <class T>
class ApplyRmspropOp : public OpKernel {
 public:
  explicit ApplyRmspropOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("num_momentum", &num_momentum_));
    OP_REQUIRES_OK(c, c->GetAttr("num_centered", &num_centered_));
    OP_REQUIRES_OK(c, c->GetAttr("rsqrt_mul", &rsqrt_mul_));
    OP_REQUIRES_OK(c, c->GetAttr("epsilon_first", &epsilon_first_));
    OP_REQUIRES(c, num_momentum_ <= 1 && num_centered_ <= 1,
                absl::InvalidArgumentError(
                    "pyoptim: num_momentum and num_centered must be 0 or 1"));
  }

  void Compute(OpKernelContext* ctx) override {
    const int nvars = 2 + num_momentum_ + num_centered_;
    LockedVariables<T> vars(ctx, Range(nvars));
    OP_REQUIRES_OK(ctx, vars.status());
    pyoptim::RmspropCoeffs<T> c{};
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars, "learning_rate", &c.lr));
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars + 1, "rho", &c.rho));
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars + 2, "one_minus_rho", &c.one_minus_rho));
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars + 3, "epsilon", &c.epsilon));
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars + 4, "momentum", &c.momentum));
    const Tensor* grad = nullptr;
    OP_REQUIRES_OK(ctx, ReadGrad<T>(ctx, nvars + 5, &grad));
    OP_REQUIRES_OK(ctx, vars.CheckAgainst(*grad));

    T* p = vars.data(0);
    T* v = vars.data(1);
    T* mom = num_momentum_ ? vars.data(2) : nullptr;
    T* avg = num_centered_ ? vars.data(2 + num_momentum_) : nullptr;
    const T* g = grad->flat<T>().data();
    const index_t n = grad->NumElements();
    if (rsqrt_mul_ && std::is_same<T, float>::value && !::pyoptim_graph::kHaveTfRsqrtEmulation) {
      ctx->CtxFailure(absl::UnimplementedError(
          "pyoptim: TensorFlow's float32 Rsqrt is emulated on x86-64 only"));
      return;
    }
    Dispatch(ctx, n, p, g, v, mom, avg, c, num_centered_ != 0, num_momentum_ != 0);
    g_calls[kRmsprop].fetch_add(1, std::memory_order_relaxed);
  }

 private:
  // Picks the kernel instantiation for the runtime flags.
  void Dispatch(OpKernelContext* ctx, index_t n, T* p, const T* g, T* v, T* mom, T* avg,
                const pyoptim::RmspropCoeffs<T>& c, bool centered, bool momentum) {
    if (centered) {
      DispatchMomentum<true>(ctx, n, p, g, v, mom, avg, c, momentum);
    } else {
      DispatchMomentum<false>(ctx, n, p, g, v, mom, avg, c, momentum);
    }
  }
  template <bool kC>
  void DispatchMomentum(OpKernelContext* ctx, index_t n, T* p, const T* g, T* v, T* mom, T* avg,
                        const pyoptim::RmspropCoeffs<T>& c, bool momentum) {
    if (momentum) {
      DispatchGraph<kC, true>(ctx, n, p, g, v, mom, avg, c);
    } else {
      DispatchGraph<kC, false>(ctx, n, p, g, v, mom, avg, c);
    }
  }
  template <bool kC, bool kM>
  void DispatchGraph(OpKernelContext* ctx, index_t n, T* p, const T* g, T* v, T* mom, T* avg,
                     const pyoptim::RmspropCoeffs<T>& c) {
    const bool eps_first = epsilon_first_ && kC;
    if (!rsqrt_mul_ && !eps_first) {  // eager Keras: the shared kernel
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        pyoptim::rmsprop_range<T, kC, kM, false>(p, g, v, mom, avg, b, e, c);
      });
    } else if (rsqrt_mul_ && eps_first) {
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        ::pyoptim_graph::rmsprop_graph_range<T, kC, kM, true, true>(p, g, v, mom, avg, b, e, n, c);
      });
    } else if (rsqrt_mul_) {
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        ::pyoptim_graph::rmsprop_graph_range<T, kC, kM, true, false>(p, g, v, mom, avg, b, e, n, c);
      });
    } else {
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        ::pyoptim_graph::rmsprop_graph_range<T, kC, kM, false, true>(p, g, v, mom, avg, b, e, n, c);
      });
    }
  }

  int num_momentum_ = 0;
  int num_centered_ = 0;
  bool rsqrt_mul_ = false;
  bool epsilon_first_ = false;
};

template <class T>
class ApplyAdamOp : public OpKernel {
 public:
  explicit ApplyAdamOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("num_amsgrad", &num_amsgrad_));
    OP_REQUIRES(c, num_amsgrad_ <= 1,
                absl::InvalidArgumentError("pyoptim: num_amsgrad must be 0 or 1"));
  }

  void Compute(OpKernelContext* ctx) override {
    const int nvars = 3 + num_amsgrad_;
    LockedVariables<T> vars(ctx, Range(nvars));
    OP_REQUIRES_OK(ctx, vars.status());
    pyoptim::AdamCoeffs<T> c{};
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars, "alpha", &c.alpha));
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars + 1, "one_minus_beta_1", &c.one_minus_beta_1));
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars + 2, "one_minus_beta_2", &c.one_minus_beta_2));
    OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nvars + 3, "epsilon", &c.epsilon));
    const Tensor* grad = nullptr;
    OP_REQUIRES_OK(ctx, ReadGrad<T>(ctx, nvars + 4, &grad));
    OP_REQUIRES_OK(ctx, vars.CheckAgainst(*grad));

    T* p = vars.data(0);
    T* m = vars.data(1);
    T* v = vars.data(2);
    T* vhat = num_amsgrad_ ? vars.data(3) : nullptr;
    const T* g = grad->flat<T>().data();
    const index_t n = grad->NumElements();
    if (num_amsgrad_) {
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        pyoptim::adam_range<T, true, false>(p, g, m, v, vhat, b, e, c);
      });
    } else {
      RunSharded(ctx, n, [&](int64_t b, int64_t e) {
        pyoptim::adam_range<T, false, false>(p, g, m, v, vhat, b, e, c);
      });
    }
    g_calls[kAdam].fetch_add(1, std::memory_order_relaxed);
  }

 private:
  int num_amsgrad_ = 0;
};

class KernelCallsOp : public OpKernel {
 public:
  explicit KernelCallsOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({3}), &out));
    auto flat = out->flat<int64_t>();
    for (int k = 0; k < 3; ++k) flat(k) = g_calls[k].load(std::memory_order_relaxed);
  }
};

#define PYOPTIM_REGISTER(T)                                                             \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("PyoptimApplySgd").Device(DEVICE_CPU).TypeConstraint<T>("T"), ApplySgdOp<T>); \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("PyoptimApplyRmsprop").Device(DEVICE_CPU).TypeConstraint<T>("T"),            \
      ApplyRmspropOp<T>);                                                               \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("PyoptimApplyAdam").Device(DEVICE_CPU).TypeConstraint<T>("T"), ApplyAdamOp<T>);

PYOPTIM_REGISTER(float)
PYOPTIM_REGISTER(double)
#undef PYOPTIM_REGISTER

REGISTER_KERNEL_BUILDER(Name("PyoptimKernelCalls").Device(DEVICE_CPU), KernelCallsOp);

class VariableCopiesOp : public OpKernel {
 public:
  explicit VariableCopiesOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = g_copies.load(std::memory_order_relaxed);
  }
};

REGISTER_KERNEL_BUILDER(Name("PyoptimVariableCopies").Device(DEVICE_CPU), VariableCopiesOp);

}  // namespace pyoptim_tf
}  // namespace tensorflow
