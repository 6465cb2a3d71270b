// TensorFlow custom ops that run pyoptim's kernels on resource variables, in
// place, the way TensorFlow's own ResourceApplyAdam does:
//
//   * one op call updates every variable of a step that the kernels serve (lists of N
//     variables, slots and gradients of one dtype), in one parallel pass;
//   * every variable input is locked, each mutex once, in a global order (as
//     MaybeLockVariableInputMutexesInOrder), so concurrent updates never deadlock;
//   * a buffer that a pending read still holds is copied first (PrepareToUpdateVariable,
//     as GetInputTensorFromVariable does: copy-on-write), so reads never observe a
//     half-done update; the copies are counted (PyoptimVariableCopies);
//   * the element loop is the range function from the shared kernel headers
//     csrc/pyoptim/{sgd,rmsprop,adam}.hpp (installed as
//     <site-packages>/pyoptim/include/pyoptim/), the very code the NumPy core runs;
//   * the tensors, laid end to end, are split into cache-line aligned blocks shared by the
//     calling thread and helpers on TensorFlow's intra-op thread pool, so TensorFlow's
//     thread settings hold.
//
// Scalar coefficients (alpha, 1 - beta_1, ...) arrive as tensors of the variable's
// dtype, computed by the Python side with the same TensorFlow ops Keras uses, so
// the element-wise results equal keras.optimizers to the bit.
//
// Built on first use by pyoptim/keras/_build.py against the installed TensorFlow,
// with the NumPy core's kernel flags (-O3 -ffp-contract=off -fno-math-errno -fno-trapping-math;
// never -ffast-math).
#define EIGEN_USE_THREADS

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tensorflow/core/platform/blocking_counter.h"
#include "tensorflow/core/platform/threadpool.h"

#include "pyoptim/adam.hpp"
#include "pyoptim/adam8bit.hpp"
#include "pyoptim/elementwise_kernels.hpp"
#include "pyoptim/rmsprop.hpp"
#include "pyoptim/segments.hpp"  // kParallelMinElements, kChunkAlign
#include "pyoptim/tf_reduce.hpp"
#include "pyoptim/sgd.hpp"
#include "elementwise_rows.hpp"
#include "rmsprop_graph.hpp"
#include "sparse_rows.hpp"

namespace tensorflow {
namespace pyoptim_tf {

using CPUDevice = Eigen::ThreadPoolDevice;
using pyoptim::index_t;
using pyoptim_sparse::GroupRows;
using pyoptim_sparse::SparseGrad;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// How many variable updates each kernel ran, and in how many op executions (all threads, all
// devices), for tests that must prove the fast path executed and that a step is one op.
// Relaxed atomics: two increments per op call.
// Slots: sgd, rmsprop, adam, adam8bit, then the element-wise kernels in their list's order.
#define PYOPTIM_COUNT(K) +1
constexpr int kElementwiseCount = 0 PYOPTIM_ELEMENTWISE_KERNELS(PYOPTIM_COUNT);
#undef PYOPTIM_COUNT
constexpr int kCallSlots = 4 + kElementwiseCount;
std::atomic<int64_t> g_calls[kCallSlots];
std::atomic<int64_t> g_ops[kCallSlots];
enum CallSlot { kSgd = 0, kRmsprop = 1, kAdam = 2, kAdam8bit = 3, kFirstElementwise = 4 };
// How many variables (or slots) were copied before an update because a pending read still
// shared their buffer (TensorFlow's copy-on-write): a measure of lost time, see
// pyoptim.keras.variable_copies().
std::atomic<int64_t> g_copies{0};

// ---------------------------------------------------------------------------
// Op definitions.  One op call updates N variables of one dtype (every variable of a training
// step that the kernels serve, in one parallel pass); the slot lists hold N resources, or 0 for
// a slot the variant does not use.  `decay` (N bools, or empty for none) runs Keras' decoupled
// weight decay, var = var - var * weight_decay * learning_rate, in the same pass.

absl::Status ScalarInputs(InferenceContext* c, int first, int count) {
  ShapeHandle unused;
  for (int i = first; i < first + count; ++i) {
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  }
  return absl::OkStatus();
}

// The inputs before the scalars: N variables and the slot lists named in `slot_attrs` (whose
// lengths are attributes), after `fixed` lists of N resources.
absl::Status ResourceCount(InferenceContext* c, int fixed, std::initializer_list<const char*> slot_attrs,
                           int* count) {
  int n;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  *count = fixed * n;
  for (const char* name : slot_attrs) {
    int k;
    TF_RETURN_IF_ERROR(c->GetAttr(name, &k));
    *count += k;
  }
  return absl::OkStatus();
}

REGISTER_OP("PyoptimApplySgd")
    .Input("var: N * resource")
    .Input("momentum_buffer: num_momentum * resource")
    .Input("learning_rate: T")
    .Input("momentum: T")
    .Input("weight_decay: T")
    .Input("decay_learning_rate: T")
    .Input("grad: N * T")
    .Input("indices: Tindices")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_momentum: int >= 0")
    .Attr("nesterov: bool = false")
    .Attr("sparse: list(bool) = []")
    .Attr("Tindices: list({int32, int64}) >= 0 = []")
    .Attr("decay: list(bool) = []")
    .Attr("unit_lr: list(bool) = []")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int first;
      TF_RETURN_IF_ERROR(ResourceCount(c, 1, {"num_momentum"}, &first));
      return ScalarInputs(c, first, 4);
    })
    .Doc(R"doc(
In place, for each of the N variables, as keras.optimizers.SGD.update_step, after Keras'
weight decay var = var - var * weight_decay * decay_learning_rate when decay[i]
(decay_learning_rate is lr, or 1 when weight_decay holds Grappler's wd * lr):
  no momentum:  var = var - grad * lr
  momentum:     m = m * momentum - grad * lr;  var = var + m
  Nesterov:     m as above;  var = var + (m * momentum - grad * lr)
with lr = 1 for the variables marked in unit_lr (their gradient already holds grad * lr).
A variable marked in `sparse` has a tf.IndexedSlices gradient: grad holds its slices' values
(unit_lr: already times lr) and the next entry of `indices` their rows.  With momentum, S(grad)
(the slices summed per row in index order, as Keras densifies them) takes grad's place in every
row; without, each slice is subtracted from its row in index order (a scatter_sub: only the
rows present are touched, unless decay[i]).
)doc");

REGISTER_OP("PyoptimApplyRmsprop")
    .Input("var: N * resource")
    .Input("velocity: N * resource")
    .Input("momentum_buffer: num_momentum * resource")
    .Input("average_grad: num_centered * resource")
    .Input("learning_rate: T")
    .Input("rho: T")
    .Input("one_minus_rho: T")
    .Input("epsilon: T")
    .Input("momentum: T")
    .Input("weight_decay: T")
    .Input("decay_learning_rate: T")
    .Input("grad: N * T")
    .Input("indices: Tindices")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_momentum: int >= 0")
    .Attr("num_centered: int >= 0")
    .Attr("sparse: list(bool) = []")
    .Attr("Tindices: list({int32, int64}) >= 0 = []")
    .Attr("rsqrt_mul: bool = false")
    .Attr("epsilon_first: bool = false")
    .Attr("decay: list(bool) = []")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int first;
      TF_RETURN_IF_ERROR(ResourceCount(c, 2, {"num_momentum", "num_centered"}, &first));
      return ScalarInputs(c, first, 7);
    })
    .Doc(R"doc(
In place, for each of the N variables, as keras.optimizers.RMSprop.update_step (epsilon inside
the square root), after Keras' weight decay var = var - var * weight_decay * decay_learning_rate
when decay[i] (decay_learning_rate is learning_rate, or 1 when weight_decay holds wd * lr):
  v = rho * v + (1 - rho) * grad^2
  centered: a = rho * a + (1 - rho) * grad;  d = (v - a^2) + epsilon;  else d = v + epsilon
  inc = (learning_rate * grad) / sqrt(d)
  momentum: mom = momentum * mom + inc;  var = var - mom;  else var = var - inc
As Keras' graph-mode arithmetic after Grappler (see rmsprop_graph.hpp):
  rsqrt_mul:     inc = (learning_rate * grad) * rsqrt(d), rsqrt as TensorFlow's Rsqrt kernel
  epsilon_first: centered d = (epsilon - a^2) + v
A variable marked in `sparse` has a tf.IndexedSlices gradient (grad: the slices' values; the
next entry of `indices`: their rows), as Keras computes it: v = rho * v + S((1 - rho) g^2) and
a = rho * a + S((1 - rho) g) in every row (S: the slices summed per row in index order), each
slice's increment (learning_rate * g) / sqrt(d) (never rsqrt_mul: Keras gathers sqrt(d) first),
momentum: mom = momentum * mom + S(inc) in every row, otherwise inc subtracted slice by slice.
)doc");

REGISTER_OP("PyoptimApplyAdam")
    .Input("var: N * resource")
    .Input("m: N * resource")
    .Input("v: N * resource")
    .Input("v_hat: num_amsgrad * resource")
    .Input("alpha: T")
    .Input("one_minus_beta_1: T")
    .Input("one_minus_beta_2: T")
    .Input("epsilon: T")
    .Input("learning_rate: T")
    .Input("weight_decay: T")
    .Input("grad: N * T")
    .Input("indices: Tindices")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_amsgrad: int >= 0")
    .Attr("sparse: list(bool) = []")
    .Attr("Tindices: list({int32, int64}) >= 0 = []")
    .Attr("lazy: bool = false")
    .Attr("decay: list(bool) = []")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int first;
      TF_RETURN_IF_ERROR(ResourceCount(c, 3, {"num_amsgrad"}, &first));
      return ScalarInputs(c, first, 6);
    })
    .Doc(R"doc(
In place, for each of the N variables, as keras.optimizers.Adam.update_step (after Keras' weight
decay when decay[i]), with alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) computed by the caller:
  m = m + (grad - m) * (1 - beta_1)
  v = v + (grad^2 - v) * (1 - beta_2)
  AMSGrad: v_hat = max(v_hat, v), used instead of v below
  var = var - (m * alpha) / (sqrt(v) + epsilon)
A variable marked in `sparse` has a tf.IndexedSlices gradient (grad: the slices' values; the
next entry of `indices`: their rows), as Keras densifies it: grad is S(g) and grad^2 is S(g^2)
(each slice squared, then summed per row in index order) in every row of var, m and v.  lazy
(LazyAdam): only the rows present change, with grad = S(g) and grad^2 = S(g)^2; a variable
marked in decay still decays in every row.
)doc");

REGISTER_OP("PyoptimApplyAdam8bit")
    .Input("var: N * resource")
    .Input("m: N * resource")
    .Input("v: N * resource")
    .Input("v_hat: num_amsgrad * resource")
    .Input("m_scale: N * resource")
    .Input("v_scale: N * resource")
    .Input("v_hat_scale: num_amsgrad * resource")
    .Input("alpha: T")
    .Input("one_minus_beta_1: T")
    .Input("one_minus_beta_2: T")
    .Input("epsilon: T")
    .Input("learning_rate: T")
    .Input("weight_decay: T")
    .Input("grad: N * T")
    .Input("indices: Tindices")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_amsgrad: int >= 0")
    .Attr("block_size: int")
    .Attr("sparse: list(bool) = []")
    .Attr("Tindices: list({int32, int64}) >= 0 = []")
    .Attr("decay: list(bool) = []")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int first;
      TF_RETURN_IF_ERROR(ResourceCount(c, 5, {"num_amsgrad", "num_amsgrad"}, &first));
      return ScalarInputs(c, first, 6);
    })
    .Doc(R"doc(
In place, for each of the N variables, Adam with 8-bit block-wise state (pyoptim/adam8bit.hpp,
the NumPy core's pyoptim.Adam8bit kernel): m is kept as int8 codes (resource m, var's shape) and
one scale of T per block of block_size elements (resource m_scale, shape [ceil(n / block_size)]),
v (and v_hat with AMSGrad) as uint8 codes and scales.  Per block: dequantise, then per element
(after the textbook weight decay var = var - var * weight_decay * learning_rate when decay[i])
  m = m + (grad - m) * (1 - beta_1)
  v = v + (grad^2 - v) * (1 - beta_2)
  AMSGrad: v_hat = max(v_hat, v), used instead of v below
  var = var - (m * alpha) / (sqrt(v) + epsilon)
then requantise the block (scale = the block's largest |value|; NaN and codes 0 when a value is
not finite).  Each block is computed whole by one thread, so results do not depend on the
number of threads.  A variable marked in `sparse` has a tf.IndexedSlices gradient (grad: the
slices' values; the next entry of `indices`: their rows), as Keras densifies it: grad is S(g)
and grad^2 is S(g^2) (each slice squared, then summed per row in index order, from +0.0) in every
row.  block_size: a multiple of 32 from 32 to 4096.
)doc");

REGISTER_OP("PyoptimApplyElementwise")
    .Input("var: N * resource")
    .Input("slots: num_slots * resource")
    .Input("coefficients: num_coefficients * T")
    .Input("weight_decay: T")
    .Input("decay_learning_rate: T")
    .Input("grad: N * T")
    .Input("indices: Tindices")
    .Attr("optimizer: string")
    .Attr("form: int = 0")
    .Attr("graph_rsqrt: bool = false")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_slots: int >= 0")
    .Attr("num_coefficients: int >= 0")
    .Attr("sparse: list(bool) = []")
    .Attr("Tindices: list({int32, int64}) >= 0 = []")
    .Attr("decay: list(bool) = []")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int first, coefficients;
      TF_RETURN_IF_ERROR(ResourceCount(c, 1, {"num_slots"}, &first));
      TF_RETURN_IF_ERROR(c->GetAttr("num_coefficients", &coefficients));
      return ScalarInputs(c, first, coefficients + 2);
    })
    .Doc(R"doc(
In place, for each of the N variables, the element-wise optimizer named `optimizer` (a kernel
of csrc/pyoptim/elementwise_kernels.hpp: its header gives the arithmetic, in Keras' operation
order, and the order of its slots and coefficients), after Keras' weight decay
var = var - var * weight_decay * decay_learning_rate when decay[i].  slots: the kernel's slots,
slot j of variable i at j * N + i.  coefficients: the kernel's scalars, computed by the caller
once per step in T with Keras' operations.  form: which of the kernel's compile-time variants
runs.  graph_rsqrt: Keras' a / sqrt(x) as Grappler rewrites it inside tf.function, a * rsqrt(x)
with TensorFlow's Rsqrt (kernels that have that division only).
A variable marked in `sparse` has a tf.IndexedSlices gradient (grad: the slices' values; the next
entry of `indices`: their rows), as Keras densifies it: each gradient term the kernel reads is
the sum of the term over the row's slices, in index order from +0.0; for a kernel whose Keras
update scatters (Adagrad), the kernel's own row update on the rows present.
)doc");

REGISTER_OP("PyoptimKernelNames")
    .Output("names: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(kCallSlots));
      return absl::OkStatus();
    })
    .Doc("The kernels counted by PyoptimKernelCalls, in its columns' order.");

REGISTER_OP("PyoptimKernelCalls")
    .Output("calls: int64")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Matrix(2, kCallSlots));
      return absl::OkStatus();
    })
    .Doc("Row 0: how many variable updates the SGD, RMSprop, Adam and Adam8bit kernels ran in "
         "this process; row 1: how many op executions those took.");

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

// Runs f(begin, end) over [0, n) in blocks of `block`, which the calling thread and up to
// (threads - 1) helpers on TensorFlow's intra-op pool take one at a time until none is left.
void RunBlocks(OpKernelContext* ctx, index_t n, index_t block,
               const std::function<void(int64_t, int64_t)>& f) {
  const DeviceBase::CpuWorkerThreads* wt = ctx->device()->tensorflow_cpu_worker_threads();
  const int threads = (wt != nullptr && wt->workers != nullptr) ? wt->num_threads : 1;
  auto shared = std::make_shared<SharedBlocks>(n, block, &f);
  const index_t helpers = std::max<index_t>(0, std::min<index_t>(threads, shared->count) - 1);
  for (index_t h = 0; h < helpers; ++h) {
    wt->workers->Schedule([shared] { shared->Work(); });
  }
  shared->Work();
  shared->left.Wait();
}

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
  RunBlocks(ctx, n, block, f);
}

// The variables of one update, locked for the lifetime of this object.
// Runs f(k, begin, end) over the elements of tensors of sizes[0..N) laid end to end, each
// starting at a multiple of kChunkAlign (so a block never starts inside a tensor at an offset
// that is not such a multiple), in RunSharded's blocks: one parallel region for all tensors.
template <class F>
void RunOverTensors(OpKernelContext* ctx, const std::vector<index_t>& sizes, const F& f) {
  std::vector<index_t> start(sizes.size());
  index_t total = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    start[k] = total;
    total += (sizes[k] + pyoptim::kChunkAlign - 1) / pyoptim::kChunkAlign * pyoptim::kChunkAlign;
  }
  const std::function<void(int64_t, int64_t)> body = [&](int64_t b, int64_t e) {
    size_t k = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    for (; k < sizes.size() && start[k] < e; ++k) {
      const index_t lo = std::max<index_t>(b, start[k]) - start[k];
      const index_t hi = std::min<index_t>(e, start[k] + sizes[k]) - start[k];
      if (lo < hi) f(k, lo, hi);
    }
  };
  RunSharded(ctx, total, body);
}

// Runs f(k, first_block, end_block) over the 8-bit blocks of tensors of sizes[0..N) (tensor k
// has ceil(sizes[k] / block) blocks, the last one possibly short), all tensors' blocks laid end
// to end, in chunks of whole blocks that the calling thread and helpers on TensorFlow's intra-op
// pool take one at a time (as RunSharded).  A block is never split between threads: each is
// computed whole, by one thread, with the same code, so the result (the block's scale above all)
// does not depend on the number of threads or on the tensors' positions in the list.
template <class F>
void RunOverBlocks(OpKernelContext* ctx, const std::vector<index_t>& sizes, index_t block,
                   const F& f) {
  std::vector<index_t> start(sizes.size()), blocks(sizes.size());
  index_t total = 0, elements = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    start[k] = total;
    blocks[k] = (sizes[k] + block - 1) / block;
    total += blocks[k];
    elements += sizes[k];
  }
  const std::function<void(int64_t, int64_t)> body = [&](int64_t b, int64_t e) {
    size_t k = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    for (; k < sizes.size() && start[k] < e; ++k) {
      const index_t lo = std::max<index_t>(b, start[k]) - start[k];
      const index_t hi = std::min<index_t>(e, start[k] + blocks[k]) - start[k];
      if (lo < hi) f(k, lo, hi);
    }
  };
  const DeviceBase::CpuWorkerThreads* wt = ctx->device()->tensorflow_cpu_worker_threads();
  const int threads = (wt != nullptr && wt->workers != nullptr) ? wt->num_threads : 1;
  if (threads <= 1 || elements < pyoptim::kParallelMinElements) {
    if (total > 0) body(0, total);
    return;
  }
  // Chunks of at least kParallelMinElements / 2 elements, about kBlocksPerThread per thread.
  const index_t min_chunk =
      std::max<index_t>(1, (pyoptim::kParallelMinElements / 2 + block - 1) / block);
  const index_t chunk = std::max<index_t>(
      min_chunk, (total + threads * kBlocksPerThread - 1) / (threads * kBlocksPerThread));
  auto shared = std::make_shared<SharedBlocks>(total, chunk, &body);
  const index_t helpers = std::min<index_t>(threads, shared->count) - 1;
  for (index_t h = 0; h < helpers; ++h) {
    wt->workers->Schedule([shared] { shared->Work(); });
  }
  shared->Work();
  shared->left.Wait();
}

// The first resource inputs of one update, each with its expected dtype (`dtypes[k]`): locked
// for the lifetime of this object, each distinct mutex once, in the order of their addresses (a
// global order, as MaybeLockVariableInputMutexesInOrder, without its quadratic search), then
// made safe to update in place: a buffer that a pending read still shares is copied first
// (PrepareToUpdateVariable for the resource's dtype, as GetInputTensorFromVariable does:
// copy-on-write; counted in g_copies).  Every resource is checked (initialized, dtype) before
// any is copied.  `name(k)` names resource k in error messages (default: "variable input k").
//
// The resource inputs are lists of `block` handles each (an op's N variables, then each kind of
// slot for the N variables): input k is a scalar handle, or the handles of its list packed in one
// tensor of shape [block] (pyoptim/keras/_packed.py passes the packed tensor at every position
// of the list), of which it takes element k % block.
class LockedResources {
 public:
  using Namer = std::function<std::string(int)>;

  LockedResources(OpKernelContext* ctx, const std::vector<DataType>& dtypes, int block,
                  const Namer& name = Namer()) {
    const int count = static_cast<int>(dtypes.size());
    auto label = [&](int k) {
      return name ? name(k) : absl::StrCat("variable input ", k);
    };
    vars_.resize(count);
    std::vector<mutex*> mutexes(count);
    for (int k = 0; k < count; ++k) {
      const Tensor& input = ctx->input(k);
      const ResourceHandle* handle = nullptr;
      if (input.dims() == 0) {
        handle = &input.scalar<ResourceHandle>()();
      } else if (input.dims() == 1 && block > 0 && input.dim_size(0) == block) {
        handle = &input.flat<ResourceHandle>()(k % block);
      } else {
        status_ = absl::InvalidArgumentError(absl::StrCat(
            "pyoptim: ", label(k), " must be a resource handle or the ", block,
            " handles of its list (shape [", block, "]), got shape ",
            input.shape().DebugString()));
        return;
      }
      status_ = LookupResource(ctx, *handle, &vars_[k]);
      if (!status_.ok()) return;
      mutexes[k] = vars_[k]->mu();
    }
    std::sort(mutexes.begin(), mutexes.end());
    mutexes.erase(std::unique(mutexes.begin(), mutexes.end()), mutexes.end());
    locks_.reserve(mutexes.size());
    for (mutex* mu : mutexes) locks_.emplace_back(*mu);

    for (int k = 0; k < count; ++k) {
      const Tensor* t = vars_[k]->tensor();
      if (!t->IsInitialized()) {
        status_ = absl::FailedPreconditionError(
            absl::StrCat("pyoptim: ", label(k), " is not initialized"));
        return;
      }
      if (t->dtype() != dtypes[k]) {
        status_ = absl::InvalidArgumentError(absl::StrCat(
            "pyoptim: ", label(k), " has dtype ", DataTypeString(t->dtype()), ", expected ",
            DataTypeString(dtypes[k])));
        return;
      }
    }
    tensors_.resize(count);
    std::vector<const char*> buffers;
    for (int k = 0; k < count; ++k) {
      Var* var = vars_[k].get();
      const bool copy = var->copy_on_read_mode.load() || !var->tensor()->RefCountIsOne();
      if (copy) g_copies.fetch_add(1, std::memory_order_relaxed);
      status_ = Prepare(ctx, var);
      if (!status_.ok()) return;
      tensors_[k] = *var->tensor();
      const Tensor& t = tensors_[k];
      if (t.NumElements() > 0) buffers.push_back(t.tensor_data().data());
    }
    // The kernels take restrict pointers and run tensors in parallel: no buffer twice.
    std::sort(buffers.begin(), buffers.end());
    if (std::adjacent_find(buffers.begin(), buffers.end()) != buffers.end()) {
      status_ = absl::InvalidArgumentError(
          "pyoptim: a variable or optimizer slot is given twice (every variable and slot of "
          "one update must be a distinct variable)");
    }
  }

  const absl::Status& status() const { return status_; }
  const Tensor& tensor(int k) const { return tensors_[k]; }
  template <class X>
  X* data(int k) {
    return tensors_[k].template flat<X>().data();
  }

 private:
  static absl::Status Prepare(OpKernelContext* ctx, Var* var) {
    Tensor* t = var->tensor();
    const bool copy_on_read = var->copy_on_read_mode.load();
    switch (t->dtype()) {
      case DT_FLOAT:
        return PrepareToUpdateVariable<CPUDevice, float>(ctx, t, copy_on_read);
      case DT_DOUBLE:
        return PrepareToUpdateVariable<CPUDevice, double>(ctx, t, copy_on_read);
      case DT_INT8:
        return PrepareToUpdateVariable<CPUDevice, int8_t>(ctx, t, copy_on_read);
      case DT_UINT8:
        return PrepareToUpdateVariable<CPUDevice, uint8_t>(ctx, t, copy_on_read);
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("pyoptim: unsupported resource dtype ", DataTypeString(t->dtype())));
    }
  }

  std::vector<core::RefCountPtr<Var>> vars_;
  std::vector<mutex_lock> locks_;
  std::vector<Tensor> tensors_;
  absl::Status status_;
};

// The first `count` resource inputs, all of dtype T (the float-state ops: variables and slots).
template <class T>
class LockedVariables : public LockedResources {
 public:
  LockedVariables(OpKernelContext* ctx, int count, int block)
      : LockedResources(ctx, std::vector<DataType>(count, DataTypeToEnum<T>::value), block) {}
  T* data(int k) { return LockedResources::template data<T>(k); }
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

// The scalar inputs from `first` on, in order, into the coefficient fields given.
template <class T>
absl::Status ReadScalars(OpKernelContext* ctx, int first,
                         std::initializer_list<std::pair<const char*, T*>> scalars) {
  int input = first;
  for (const auto& [name, out] : scalars) TF_RETURN_IF_ERROR(ReadScalar<T>(ctx, input++, name, out));
  return absl::OkStatus();
}

// Checks a sparse gradient (values, indices) against variable input k's shape and groups its
// slices by row.  Every index is checked before anything is written.
template <class T, class Index>
absl::Status GroupSlices(const Tensor& values, const Tensor& indices, const TensorShape& shape,
                         int k, SparseGrad<T>* out) {
  if (shape.dims() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pyoptim: variable input ", k, " is a scalar but its gradient is sparse"));
  }
  if (indices.dims() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pyoptim: indices of gradient ", k, " must be a vector, got shape ",
        indices.shape().DebugString()));
  }
  bool same = values.dims() == shape.dims() && values.dim_size(0) == indices.dim_size(0);
  for (int d = 1; same && d < shape.dims(); ++d) same = values.dim_size(d) == shape.dim_size(d);
  if (!same) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pyoptim: gradient ", k, " (sparse) has values of shape ", values.shape().DebugString(),
        " and ", indices.dim_size(0), " indices, but its variable has shape ",
        shape.DebugString()));
  }
  const index_t n = indices.dim_size(0);
  const index_t rows = shape.dim_size(0);
  const index_t cols = rows > 0 ? shape.num_elements() / rows : 0;
  const Index* idx = indices.flat<Index>().data();
  const index_t bad = GroupRows<T, Index>(idx, n, rows, cols, values.flat<T>().data(), out);
  if (bad >= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pyoptim: indices[", bad, "] = ", static_cast<int64_t>(idx[bad]), " of gradient ", k,
        " is out of range [0, ", rows, ")"));
  }
  return absl::OkStatus();
}

// The N gradients from input `first` on (then the sparse ones' indices), checked against
// variable k and its slots (resource inputs k + j * N for j < groups).  A dense gradient's
// data goes to grads[k]; a sparse one (sparse[k]) is grouped into sparse_grads[k].
template <class T>
absl::Status ReadGrads(OpKernelContext* ctx, const LockedResources& vars, int first, int n,
                       int groups, const std::vector<bool>& sparse, std::vector<const T*>* grads,
                       std::vector<std::unique_ptr<SparseGrad<T>>>* sparse_grads) {
  grads->assign(n, nullptr);
  sparse_grads->clear();
  sparse_grads->resize(n);
  int next_indices = first + n;
  for (int k = 0; k < n; ++k) {
    const Tensor& g = ctx->input(first + k);
    if (g.dtype() != DataTypeToEnum<T>::value) {
      return absl::InvalidArgumentError(
          absl::StrCat("pyoptim: gradient ", k, " has another dtype than its variable"));
    }
    const TensorShape& shape = vars.tensor(k).shape();
    for (int j = 1; j < groups; ++j) {
      const Tensor& t = vars.tensor(k + j * n);
      if (!t.shape().IsSameSize(shape)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pyoptim: variable input ", k + j * n, " has shape ", t.shape().DebugString(),
            " but variable input ", k, " has shape ", shape.DebugString()));
      }
    }
    if (sparse[k]) {
      if (next_indices >= ctx->num_inputs()) {
        return absl::InvalidArgumentError("pyoptim: fewer indices than sparse gradients");
      }
      const Tensor& indices = ctx->input(next_indices++);
      auto sg = std::make_unique<SparseGrad<T>>();
      TF_RETURN_IF_ERROR(indices.dtype() == DT_INT32
                             ? GroupSlices<T, int32_t>(g, indices, shape, k, sg.get())
                             : GroupSlices<T, int64_t>(g, indices, shape, k, sg.get()));
      (*sparse_grads)[k] = std::move(sg);
      continue;
    }
    if (!shape.IsSameSize(g.shape())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pyoptim: variable input ", k, " has shape ", shape.DebugString(), " but gradient ", k,
          " has shape ", g.shape().DebugString()));
    }
    (*grads)[k] = g.flat<T>().data();
  }
  if (next_indices != ctx->num_inputs()) {
    return absl::InvalidArgumentError("pyoptim: more indices than sparse gradients");
  }
  return absl::OkStatus();
}

// Each tensor's element count for RunOverTensors: a dense gradient's, a sparse one's table
// (rows * cols) or, when only its hit rows are updated (`hit_rows_only(k)`), those rows'.
template <class T, class F>
std::vector<index_t> Sizes(const LockedVariables<T>& vars,
                           const std::vector<std::unique_ptr<SparseGrad<T>>>& sparse,
                           const F& hit_rows_only) {
  std::vector<index_t> sizes(sparse.size());
  for (size_t k = 0; k < sparse.size(); ++k) {
    sizes[k] = sparse[k] ? sparse[k]->Extent(hit_rows_only(k))
                         : vars.tensor(static_cast<int>(k)).NumElements();
  }
  return sizes;
}

// A list(bool) attribute of N entries, or empty (all false).
absl::Status ReadFlags(OpKernelConstruction* c, const char* name, int n, std::vector<bool>* out) {
  std::vector<bool> flags;
  TF_RETURN_IF_ERROR(c->GetAttr(name, &flags));
  if (!flags.empty() && static_cast<int>(flags.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("pyoptim: ", name, " must have N = ", n, " entries or none"));
  }
  flags.resize(n, false);
  *out = std::move(flags);
  return absl::OkStatus();
}

// An optional slot list's length attribute: 0 or N.
absl::Status ReadSlotCount(OpKernelConstruction* c, const char* name, int n, int* out) {
  TF_RETURN_IF_ERROR(c->GetAttr(name, out));
  if (*out != 0 && *out != n) {
    return absl::InvalidArgumentError(absl::StrCat("pyoptim: ", name, " must be 0 or N = ", n));
  }
  return absl::OkStatus();
}

void Count(CallSlot slot, int variables) {
  g_calls[slot].fetch_add(variables, std::memory_order_relaxed);
  g_ops[slot].fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// Kernels.

template <class T>
class ApplySgdOp : public OpKernel {
 public:
  explicit ApplySgdOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("N", &n_));
    OP_REQUIRES_OK(c, ReadSlotCount(c, "num_momentum", n_, &num_momentum_));
    OP_REQUIRES_OK(c, c->GetAttr("nesterov", &nesterov_));
    OP_REQUIRES_OK(c, ReadFlags(c, "decay", n_, &decay_));
    OP_REQUIRES_OK(c, ReadFlags(c, "unit_lr", n_, &unit_lr_));
    OP_REQUIRES_OK(c, ReadFlags(c, "sparse", n_, &sparse_));
  }

  void Compute(OpKernelContext* ctx) override {
    const int nres = n_ + num_momentum_;
    LockedVariables<T> vars(ctx, nres, n_);
    OP_REQUIRES_OK(ctx, vars.status());
    pyoptim::SgdCoeffs<T> c{};
    OP_REQUIRES_OK(ctx, ReadScalars<T>(ctx, nres, {{"learning_rate", &c.lr},
                                                   {"momentum", &c.momentum},
                                                   {"weight_decay", &c.weight_decay},
                                                   {"decay_learning_rate", &c.decay_lr}}));
    std::vector<const T*> g;
    std::vector<std::unique_ptr<SparseGrad<T>>> sg;
    OP_REQUIRES_OK(ctx, ReadGrads<T>(ctx, vars, nres + 4, n_, nres / n_, sparse_, &g, &sg));
    pyoptim::SgdCoeffs<T> unit = c;  // the update's lr is 1, the decay's stays
    unit.lr = T(1);
    const auto sizes = Sizes(vars, sg, [&](size_t k) {
      return pyoptim_sparse::SgdHitRowsOnly(num_momentum_ > 0, decay_[k]);
    });
    if (num_momentum_ == 0) {
      Run<pyoptim::SgdMode::kPlain>(ctx, vars, g, sg, sizes, c, unit);
    } else if (nesterov_) {
      Run<pyoptim::SgdMode::kNesterov>(ctx, vars, g, sg, sizes, c, unit);
    } else {
      Run<pyoptim::SgdMode::kMomentum>(ctx, vars, g, sg, sizes, c, unit);
    }
    Count(kSgd, n_);
  }

 private:
  template <pyoptim::SgdMode kMode>
  void Run(OpKernelContext* ctx, LockedVariables<T>& vars, const std::vector<const T*>& g,
           const std::vector<std::unique_ptr<SparseGrad<T>>>& sg,
           const std::vector<index_t>& sizes, const pyoptim::SgdCoeffs<T>& c,
           const pyoptim::SgdCoeffs<T>& unit) {
    RunOverTensors(ctx, sizes, [&](size_t k, index_t b, index_t e) {
      T* p = vars.data(k);
      T* m = num_momentum_ ? vars.data(n_ + k) : nullptr;
      if (decay_[k]) {
        Range<kMode, true>(p, m, g[k], sg[k].get(), b, e, unit_lr_[k] ? unit : c, unit);
      } else {
        Range<kMode, false>(p, m, g[k], sg[k].get(), b, e, unit_lr_[k] ? unit : c, unit);
      }
    });
  }

  template <pyoptim::SgdMode kMode, bool kDecay>
  static void Range(T* p, T* m, const T* g, const SparseGrad<T>* s, index_t b, index_t e,
                    const pyoptim::SgdCoeffs<T>& c, const pyoptim::SgdCoeffs<T>& unit) {
    if (s == nullptr) {
      pyoptim::sgd_loop<T, kMode, kDecay>(p, pyoptim::DenseGrad<T>{g}, m, b, e, c);
    } else {
      pyoptim_sparse::SgdRange<T, kMode, kDecay>(p, m, *s, b, e, unit);
    }
  }

  int n_ = 0;
  int num_momentum_ = 0;
  bool nesterov_ = false;
  std::vector<bool> decay_, unit_lr_, sparse_;
};

template <class T>
class ApplyRmspropOp : public OpKernel {
 public:
  explicit ApplyRmspropOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("N", &n_));
    OP_REQUIRES_OK(c, ReadSlotCount(c, "num_momentum", n_, &num_momentum_));
    OP_REQUIRES_OK(c, ReadSlotCount(c, "num_centered", n_, &num_centered_));
    OP_REQUIRES_OK(c, c->GetAttr("rsqrt_mul", &rsqrt_mul_));
    OP_REQUIRES_OK(c, c->GetAttr("epsilon_first", &epsilon_first_));
    OP_REQUIRES_OK(c, ReadFlags(c, "decay", n_, &decay_));
    OP_REQUIRES_OK(c, ReadFlags(c, "sparse", n_, &sparse_));
  }

  void Compute(OpKernelContext* ctx) override {
    const int nres = 2 * n_ + num_momentum_ + num_centered_;
    LockedVariables<T> vars(ctx, nres, n_);
    OP_REQUIRES_OK(ctx, vars.status());
    pyoptim::RmspropCoeffs<T> c{};
    OP_REQUIRES_OK(ctx, ReadScalars<T>(ctx, nres, {{"learning_rate", &c.lr},
                                                   {"rho", &c.rho},
                                                   {"one_minus_rho", &c.one_minus_rho},
                                                   {"epsilon", &c.epsilon},
                                                   {"momentum", &c.momentum},
                                                   {"weight_decay", &c.weight_decay},
                                                   {"decay_learning_rate", &c.decay_lr}}));
    std::vector<const T*> g;
    std::vector<std::unique_ptr<SparseGrad<T>>> sg;
    OP_REQUIRES_OK(ctx, ReadGrads<T>(ctx, vars, nres + 7, n_, nres / n_, sparse_, &g, &sg));
    if (rsqrt_mul_ && std::is_same<T, float>::value && !::pyoptim_graph::kHaveTfRsqrtEmulation) {
      ctx->CtxFailure(absl::UnimplementedError(
          "pyoptim: TensorFlow's float32 Rsqrt is emulated on x86-64 only"));
      return;
    }
    const auto sizes = Sizes(vars, sg, [](size_t) { return false; });
    if (num_centered_) {
      DispatchMomentum<true>(ctx, vars, g, sg, sizes, c);
    } else {
      DispatchMomentum<false>(ctx, vars, g, sg, sizes, c);
    }
    Count(kRmsprop, n_);
  }

 private:
  using Sparse = std::vector<std::unique_ptr<SparseGrad<T>>>;

  template <bool kC>
  void DispatchMomentum(OpKernelContext* ctx, LockedVariables<T>& vars,
                        const std::vector<const T*>& g, const Sparse& sg,
                        const std::vector<index_t>& sizes, const pyoptim::RmspropCoeffs<T>& c) {
    if (num_momentum_) {
      DispatchGraph<kC, true>(ctx, vars, g, sg, sizes, c);
    } else {
      DispatchGraph<kC, false>(ctx, vars, g, sg, sizes, c);
    }
  }

  template <bool kC, bool kM>
  void DispatchGraph(OpKernelContext* ctx, LockedVariables<T>& vars,
                     const std::vector<const T*>& g, const Sparse& sg,
                     const std::vector<index_t>& sizes, const pyoptim::RmspropCoeffs<T>& c) {
    const bool eps_first = epsilon_first_ && kC;
    if (!rsqrt_mul_ && !eps_first) {  // eager Keras: the shared kernel
      RunGraph<kC, kM, false, false>(ctx, vars, g, sg, sizes, c);
    } else if (rsqrt_mul_ && eps_first) {
      RunGraph<kC, kM, true, true>(ctx, vars, g, sg, sizes, c);
    } else if (rsqrt_mul_) {
      RunGraph<kC, kM, true, false>(ctx, vars, g, sg, sizes, c);
    } else {
      RunGraph<kC, kM, false, true>(ctx, vars, g, sg, sizes, c);
    }
  }

  template <bool kC, bool kM, bool kRsqrt, bool kEpsFirst>
  void RunGraph(OpKernelContext* ctx, LockedVariables<T>& vars, const std::vector<const T*>& g,
                const Sparse& sg, const std::vector<index_t>& sizes,
                const pyoptim::RmspropCoeffs<T>& c) {
    RunOverTensors(ctx, sizes, [&](size_t k, index_t b, index_t e) {
      T *p, *v, *mom, *avg;
      Slots(vars, k, &p, &v, &mom, &avg);
      if (decay_[k]) {
        Range<kC, kM, kRsqrt, kEpsFirst, true>(p, g[k], sg[k].get(), v, mom, avg, b, e,
                                               sizes[k], c);
      } else {
        Range<kC, kM, kRsqrt, kEpsFirst, false>(p, g[k], sg[k].get(), v, mom, avg, b, e,
                                                sizes[k], c);
      }
    });
  }

  template <bool kC, bool kM, bool kRsqrt, bool kEpsFirst, bool kDecay>
  static void Range(T* p, const T* g, const SparseGrad<T>* s, T* v, T* mom, T* avg, index_t b,
                    index_t e, index_t size, const pyoptim::RmspropCoeffs<T>& c) {
    if (s != nullptr) {
      pyoptim_sparse::RmspropRange<T, kC, kM, kEpsFirst, kDecay>(p, *s, v, mom, avg, b, e, c);
    } else if constexpr (!kRsqrt && !kEpsFirst) {
      pyoptim::rmsprop_range<T, kC, kM, kDecay>(p, g, v, mom, avg, b, e, c);
    } else {
      ::pyoptim_graph::rmsprop_graph_range<T, kC, kM, kRsqrt, kEpsFirst, kDecay>(
          p, g, v, mom, avg, b, e, size, c);
    }
  }

  void Slots(LockedVariables<T>& vars, size_t k, T** p, T** v, T** mom, T** avg) const {
    *p = vars.data(k);
    *v = vars.data(n_ + k);
    *mom = num_momentum_ ? vars.data(2 * n_ + k) : nullptr;
    *avg = num_centered_ ? vars.data(2 * n_ + num_momentum_ + k) : nullptr;
  }

  int n_ = 0;
  int num_momentum_ = 0;
  int num_centered_ = 0;
  bool rsqrt_mul_ = false;
  bool epsilon_first_ = false;
  std::vector<bool> decay_, sparse_;
};

// Adam's scalar inputs (alpha ... weight_decay), the first at input `first`.
template <class T>
absl::Status ReadAdamCoeffs(OpKernelContext* ctx, int first, pyoptim::AdamCoeffs<T>* c) {
  return ReadScalars<T>(ctx, first, {{"alpha", &c->alpha},
                                     {"one_minus_beta_1", &c->one_minus_beta_1},
                                     {"one_minus_beta_2", &c->one_minus_beta_2},
                                     {"epsilon", &c->epsilon},
                                     {"learning_rate", &c->lr},
                                     {"weight_decay", &c->weight_decay}});
}

template <class T>
class ApplyAdamOp : public OpKernel {
 public:
  explicit ApplyAdamOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("N", &n_));
    OP_REQUIRES_OK(c, ReadSlotCount(c, "num_amsgrad", n_, &num_amsgrad_));
    OP_REQUIRES_OK(c, ReadFlags(c, "decay", n_, &decay_));
    OP_REQUIRES_OK(c, ReadFlags(c, "sparse", n_, &sparse_));
    OP_REQUIRES_OK(c, c->GetAttr("lazy", &lazy_));
  }

  void Compute(OpKernelContext* ctx) override {
    const int nres = 3 * n_ + num_amsgrad_;
    LockedVariables<T> vars(ctx, nres, n_);
    OP_REQUIRES_OK(ctx, vars.status());
    pyoptim::AdamCoeffs<T> c{};
    OP_REQUIRES_OK(ctx, ReadAdamCoeffs<T>(ctx, nres, &c));
    std::vector<const T*> g;
    std::vector<std::unique_ptr<SparseGrad<T>>> sg;
    OP_REQUIRES_OK(ctx, ReadGrads<T>(ctx, vars, nres + 6, n_, nres / n_, sparse_, &g, &sg));
    const auto sizes = Sizes(vars, sg, [&](size_t k) {
      return pyoptim_sparse::AdamHitRowsOnly(lazy_, decay_[k]);
    });
    if (num_amsgrad_) {
      Run<true>(ctx, vars, g, sg, sizes, c);
    } else {
      Run<false>(ctx, vars, g, sg, sizes, c);
    }
    Count(kAdam, n_);
  }

 private:
  template <bool kAmsgrad>
  void Run(OpKernelContext* ctx, LockedVariables<T>& vars, const std::vector<const T*>& g,
           const std::vector<std::unique_ptr<SparseGrad<T>>>& sg,
           const std::vector<index_t>& sizes, const pyoptim::AdamCoeffs<T>& c) {
    RunOverTensors(ctx, sizes, [&](size_t k, index_t b, index_t e) {
      T* p = vars.data(k);
      T* m = vars.data(n_ + k);
      T* v = vars.data(2 * n_ + k);
      T* vhat = kAmsgrad ? vars.data(3 * n_ + k) : nullptr;
      if (decay_[k]) {
        Range<kAmsgrad, true>(p, g[k], sg[k].get(), m, v, vhat, b, e, c);
      } else {
        Range<kAmsgrad, false>(p, g[k], sg[k].get(), m, v, vhat, b, e, c);
      }
    });
  }

  template <bool kAmsgrad, bool kDecay>
  void Range(T* p, const T* g, const SparseGrad<T>* s, T* m, T* v, T* vhat, index_t b,
             index_t e, const pyoptim::AdamCoeffs<T>& c) const {
    if (s == nullptr) {
      pyoptim::adam_loop<T, kAmsgrad, kDecay>(p, pyoptim::DenseGrad<T>{g}, m, v, vhat, b, e, c);
      return;
    }
    pyoptim_sparse::AdamRange<T, kAmsgrad, kDecay>(p, *s, m, v, vhat, b, e, c, lazy_);
  }

  int n_ = 0;
  int num_amsgrad_ = 0;
  bool lazy_ = false;
  std::vector<bool> decay_, sparse_;
};

// Adam with 8-bit block-wise state.  Resource inputs, in order: var [0, N), m codes [N, 2N),
// v codes [2N, 3N), v_hat codes [3N, 3N + A), m scales, v scales (N each), v_hat scales (A);
// A = num_amsgrad (0 or N).  Every input is checked (dtypes, shapes, the sparse gradients'
// indices) before anything is written.
template <class T>
class ApplyAdam8bitOp : public OpKernel {
 public:
  explicit ApplyAdam8bitOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("N", &n_));
    OP_REQUIRES_OK(c, ReadSlotCount(c, "num_amsgrad", n_, &num_amsgrad_));
    OP_REQUIRES_OK(c, ReadFlags(c, "decay", n_, &decay_));
    OP_REQUIRES_OK(c, ReadFlags(c, "sparse", n_, &sparse_));
    int64_t block = 0;
    OP_REQUIRES_OK(c, c->GetAttr("block_size", &block));
    OP_REQUIRES(c,
                block >= pyoptim::kMinQuantBlock && block <= pyoptim::kMaxQuantBlock &&
                    block % pyoptim::kQuantBlockMultiple == 0,
                absl::InvalidArgumentError(absl::StrCat(
                    "pyoptim: block_size must be a multiple of ", pyoptim::kQuantBlockMultiple,
                    " from ", pyoptim::kMinQuantBlock, " to ", pyoptim::kMaxQuantBlock, ", got ",
                    block)));
    block_ = block;
  }

  void Compute(OpKernelContext* ctx) override {
    const int a = num_amsgrad_;
    const int nres = 5 * n_ + 2 * a;
    const DataType dt = DataTypeToEnum<T>::value;
    std::vector<DataType> dtypes;
    dtypes.reserve(nres);
    dtypes.insert(dtypes.end(), n_, dt);        // var
    dtypes.insert(dtypes.end(), n_, DT_INT8);   // m codes
    dtypes.insert(dtypes.end(), n_, DT_UINT8);  // v codes
    dtypes.insert(dtypes.end(), a, DT_UINT8);   // v_hat codes
    dtypes.insert(dtypes.end(), 2 * n_ + a, dt);  // scales
    LockedResources vars(ctx, dtypes, n_, [this](int k) { return Name(k); });
    OP_REQUIRES_OK(ctx, vars.status());
    OP_REQUIRES_OK(ctx, CheckShapes(vars));
    pyoptim::AdamCoeffs<T> c{};
    OP_REQUIRES_OK(ctx, ReadAdamCoeffs<T>(ctx, nres, &c));
    std::vector<const T*> g;
    std::vector<std::unique_ptr<SparseGrad<T>>> sg;
    OP_REQUIRES_OK(ctx, ReadGrads<T>(ctx, vars, nres + 6, n_, 1, sparse_, &g, &sg));
    std::vector<index_t> sizes(n_);
    for (int k = 0; k < n_; ++k) sizes[k] = vars.tensor(k).NumElements();
    if (a) {
      Run<true>(ctx, vars, g, sg, sizes, c);
    } else {
      Run<false>(ctx, vars, g, sg, sizes, c);
    }
    Count(kAdam8bit, n_);
  }

 private:
  // Resource input k as the op's signature names it, e.g. "input m_scale[2]".
  std::string Name(int k) const {
    const std::pair<const char*, int> lists[] = {
        {"var", n_},        {"m", n_},       {"v", n_},
        {"v_hat", num_amsgrad_}, {"m_scale", n_}, {"v_scale", n_},
        {"v_hat_scale", num_amsgrad_}};
    for (const auto& [name, count] : lists) {
      if (k < count) return absl::StrCat("input ", name, "[", k, "]");
      k -= count;
    }
    return absl::StrCat("resource input ", k);
  }

  // Codes: their variable's shape; scales: [ceil(n / block_size)].
  absl::Status CheckShapes(const LockedResources& vars) const {
    const int a = num_amsgrad_;
    for (int k = 0; k < n_; ++k) {
      const TensorShape& shape = vars.tensor(k).shape();
      const index_t blocks = (shape.num_elements() + block_ - 1) / block_;
      std::vector<int> codes = {n_ + k, 2 * n_ + k};
      std::vector<int> scales = {3 * n_ + a + k, 4 * n_ + a + k};
      if (a) {
        codes.push_back(3 * n_ + k);
        scales.push_back(5 * n_ + a + k);
      }
      for (int r : codes) {
        const TensorShape& s = vars.tensor(r).shape();
        if (!s.IsSameSize(shape)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "pyoptim: ", Name(r), " has shape ", s.DebugString(), " but ", Name(k),
              " has shape ", shape.DebugString(), " (the codes have their variable's shape)"));
        }
      }
      for (int r : scales) {
        const TensorShape& s = vars.tensor(r).shape();
        if (s.dims() != 1 || s.dim_size(0) != blocks) {
          return absl::InvalidArgumentError(absl::StrCat(
              "pyoptim: ", Name(r), " has shape ", s.DebugString(), ", expected [", blocks,
              "]: one scale per block of ", block_, " elements of ", Name(k), " (",
              shape.num_elements(), " elements)"));
        }
      }
    }
    return absl::OkStatus();
  }

  template <bool kAmsgrad>
  void Run(OpKernelContext* ctx, LockedResources& vars, const std::vector<const T*>& g,
           const std::vector<std::unique_ptr<SparseGrad<T>>>& sg, const std::vector<index_t>& sizes,
           const pyoptim::AdamCoeffs<T>& c) {
    const int n = n_, a = num_amsgrad_;
    const index_t block = block_;
    RunOverBlocks(ctx, sizes, block, [&](size_t k, index_t blo, index_t bhi) {
      T* p = vars.template data<T>(k);
      std::int8_t* qm = vars.template data<std::int8_t>(n + k);
      std::uint8_t* qv = vars.template data<std::uint8_t>(2 * n + k);
      std::uint8_t* qvh = kAmsgrad ? vars.template data<std::uint8_t>(3 * n + k) : nullptr;
      T* sm = vars.template data<T>(3 * n + a + k);
      T* sv = vars.template data<T>(4 * n + a + k);
      T* svh = kAmsgrad ? vars.template data<T>(5 * n + a + k) : nullptr;
      if (!sg[k]) {
        Blocks<kAmsgrad>(decay_[k], p, pyoptim::DenseGrad<T>{g[k]}, qm, qv, qvh, sm, sv, svh,
                         sizes[k], block, blo, bhi, c);
        return;
      }
      // A sparse gradient as Keras densifies it, S(g) and S(g * g) (+0.0 in the rows no slice
      // hits), made one block at a time on the thread that updates the block.
      const SparseGrad<T>& s = *sg[k];
      std::vector<T> sums(2 * block);
      T* s1 = sums.data();
      T* s2 = s1 + block;
      for (index_t blk = blo; blk < bhi; ++blk) {
        const index_t b = blk * block, e = std::min(b + block, sizes[k]);
        s.Walk(
            b, e,
            [&](index_t lo, index_t hi) {
              std::fill(s1 + (lo - b), s1 + (hi - b), T(0));
              std::fill(s2 + (lo - b), s2 + (hi - b), T(0));
            },
            [&](index_t j, index_t off, index_t lo, index_t hi) {
              s.RowSums(
                  j, lo, hi, [](T x) { return x; }, [](T x) { return x * x; },
                  [&](index_t cb, index_t ce, const T* r1, const T* r2) {
                    std::copy(r1, r1 + (ce - cb), s1 + (off + cb - b));
                    std::copy(r2, r2 + (ce - cb), s2 + (off + cb - b));
                  });
            });
        Blocks<kAmsgrad>(decay_[k], p, BlockSums{s1, s2, b}, qm, qv, qvh, sm, sv, svh, sizes[k],
                         block, blk, blk + 1, c);
      }
    });
  }

  // S(g) and S(g * g) of one block whose first element is `base`: element i at [i - base].
  struct BlockSums {
    const T* g;
    const T* g2;
    index_t base;
    T operator()(index_t i) const { return g[i - base]; }
    T square(index_t i, T) const { return g2[i - base]; }
  };

  template <bool kAmsgrad, class G>
  static void Blocks(bool decay, T* p, const G& grad, std::int8_t* qm, std::uint8_t* qv,
                     std::uint8_t* qvh, T* sm, T* sv, T* svh, index_t n, index_t block,
                     index_t blo, index_t bhi, const pyoptim::AdamCoeffs<T>& c) {
    if (decay) {
      pyoptim::adam8bit_blocks<T, kAmsgrad, true, T, G>(p, grad, qm, qv, qvh, sm, sv, svh, n,
                                                         block, blo, bhi, c);
    } else {
      pyoptim::adam8bit_blocks<T, kAmsgrad, false, T, G>(p, grad, qm, qv, qvh, sm, sv, svh, n,
                                                          block, blo, bhi, c);
    }
  }

  int n_ = 0;
  int num_amsgrad_ = 0;
  index_t block_ = 0;
  std::vector<bool> decay_, sparse_;
};

// The element-wise kernels, one entry per line of PYOPTIM_ELEMENTWISE_KERNELS.
template <class T>
struct ElementwiseKernel {
  const char* name;
  int slots, coefficients, variants;
  bool graph_rsqrt;
  // Elements [b, e) of one variable of n elements: p, its slots s[0..2], a dense gradient g or
  // `sparse` (see pyoptim_elementwise::Range).
  void (*range)(int variant, bool decay, bool graph, T* p, T* const* s, const T* g,
                const SparseGrad<T>* sparse, index_t b, index_t e, index_t n,
                const pyoptim::ElementwiseCoeffs<T>& c);
  bool (*hit_rows_only)(bool decay);
  // kTensorNorms kernels: the passes after the update (TensorNormPasses); others: null.
  // fused[k]: variable k's dense gradient when its decay and update are made in the norms'
  // pass (decay[k]: with Keras' weight decay, c.weight_decay and c.decay_lr), else null.
  void (*norms)(OpKernelContext* ctx, LockedVariables<T>& vars, int n, int variant,
                const pyoptim::ElementwiseCoeffs<T>& c, const std::vector<const T*>& fused,
                const std::vector<bool>& decay);
};

template <class K, class T>
void ElementwiseRange(int variant, bool decay, bool graph, T* p, T* const* s, const T* g,
                      const SparseGrad<T>* sparse, index_t b, index_t e, index_t n,
                      const pyoptim::ElementwiseCoeffs<T>& c) {
  using pyoptim_elementwise::Range;
  // A dense or summed-sparse pass covers the table, so [b, e) are positions in the tensor; a
  // kTfTail kernel's tail variant runs on its last n % P elements.
  pyoptim::split_tf_tail<K, T>(variant, b, e, n, [&](int form, index_t lo, index_t hi) {
    pyoptim_elementwise::WithVariant<K>(form, [&](auto v) {
      constexpr int kV = decltype(v)::value;
      if (graph) {
        decay ? Range<K, T, kV, true, true>(p, s, g, sparse, lo, hi, n, c)
              : Range<K, T, kV, false, true>(p, s, g, sparse, lo, hi, n, c);
      } else {
        decay ? Range<K, T, kV, true, false>(p, s, g, sparse, lo, hi, n, c)
              : Range<K, T, kV, false, false>(p, s, g, sparse, lo, hi, n, c);
      }
    });
  });
}

// A kTensorNorms kernel (Lamb) after its update of the slots: per tensor, TensorFlow's
// reduce_sum of square(p) and of square(step(i)) (tf_reduce.hpp: the shards TensorFlow's
// FullReducer would make for this device's thread count; every shard of every tensor in one
// parallel loop on TensorFlow's pool (RunBlocks), combined in TensorFlow's order), then in one
// parallel pass p = finish(p, step(i), scale(sums)).  The variant's form (variant / 2) picks
// square's arithmetic; its last n % P elements take the tail variant.  A variable with
// fused[k] (a dense gradient) had no update pass: the first sum applies and stores its weight
// decay (decay[k]), and the second updates its slots, element by element just before its
// step(i), as the core's tensor_norm_passes does (two passes instead of three); both sum
// through pyoptim::tensor_norm_sum (elementwise.hpp).
template <class K, class T>
void TensorNormPasses(OpKernelContext* ctx, LockedVariables<T>& vars, int n, int variant,
                      const pyoptim::ElementwiseCoeffs<T>& ec, const std::vector<const T*>& fused,
                      const std::vector<bool>& decay) {
  if constexpr (K::kTensorNorms) {
    namespace R = pyoptim::tf_reduce;
    const T* c = ec.c;
    constexpr index_t P = pyoptim::kTfPacket<T>;
    const int threads = ctx->eigen_device<Eigen::ThreadPoolDevice>().numThreads();
    struct Part {
      int k;
      index_t first, count;
    };
    std::vector<Part> parts;
    std::vector<R::Plan> plans(n);
    std::vector<size_t> first_part(n);
    for (int k = 0; k < n; ++k) {
      const index_t size = vars.tensor(k).NumElements();
      plans[k] = R::plan<T>(size, threads);
      first_part[k] = parts.size();
      if (plans[k].num_blocks == 0) {
        parts.push_back({k, 0, size});
        continue;
      }
      for (index_t i = 0; i < plans[k].num_blocks; ++i) parts.push_back({k, i * plans[k].block, plans[k].block});
      parts.push_back({k, plans[k].tail_begin, size - plans[k].tail_begin});  // may be empty
    }
    std::vector<T> p_sums(parts.size()), u_sums(parts.size());
    const bool graph = variant / 2 == 1;
    std::array<T, K::kCoeffs> cc;
    for (int j = 0; j < K::kCoeffs; ++j) cc[j] = c[j];
    auto sums = [&](auto form) {
      constexpr int kForm = decltype(form)::value;
      auto work = [&](int64_t lo, int64_t hi) {
        std::vector<T> buffer(kForm == 1 ? 0 : R::kLeafBuffer<T>);  // the eager form's
        for (int64_t q = lo; q < hi; ++q) {
          const Part& part = parts[q];
          T* p = vars.data(part.k);
          T* m = vars.data(n + part.k);
          T* v = vars.data(2 * n + part.k);
          const index_t size = vars.tensor(part.k).NumElements(), cut = size - size % P;
          auto sum = [&](const auto& value) {
            return pyoptim::tensor_norm_sum<K, T, kForm>(value, part.first, part.count, cut,
                                                         buffer.data());
          };
          if (part.count == 0) {
            p_sums[q] = u_sums[q] = T(0);
            continue;
          }
          if (fused[part.k] != nullptr && decay[part.k]) {  // Keras' p = p - p * wd * lr
            const T wd = ec.weight_decay, dlr = ec.decay_lr;
            p_sums[q] = sum([p, wd, dlr](int64_t i, auto) {
              T pi = p[i];
              pi = pi - pi * wd * dlr;
              p[i] = pi;
              return pi;
            });
          } else {
            p_sums[q] = sum([p](int64_t i, auto) { return p[i]; });
          }
          if (fused[part.k] != nullptr) {
            const pyoptim::DenseTerms<K, T> terms(fused[part.k], cc.data());
            u_sums[q] = sum([m, v, cc, terms](int64_t i, auto kv) {
              (void)K::template update<T, decltype(kv)::value>(T(0), terms, i, m, v, nullptr,
                                                               cc.data());
              return K::step(i, m, v, cc.data());
            });
          } else {
            u_sums[q] = sum([m, v, cc](int64_t i, auto) { return K::step(i, m, v, cc.data()); });
          }
        }
      };
      index_t elements = 0;
      for (const Part& part : parts) elements += part.count;
      // One part at a time per thread, as the core's OpenMP loop: TensorFlow's shards are few
      // and large, and a cost-model ParallelFor coarsens 3 parts on 2 threads into blocks of 2,
      // which gave a large tensor's two shards to one thread and its empty final shard to the
      // other.
      if (elements < pyoptim::kParallelMinElements) {
        work(0, static_cast<int64_t>(parts.size()));
      } else {
        RunBlocks(ctx, static_cast<index_t>(parts.size()), 1, work);
      }
    };
    if (graph) {
      sums(std::integral_constant<int, 1>{});
    } else {
      sums(std::integral_constant<int, 0>{});
    }
    std::vector<T> scale(n);
    for (int k = 0; k < n; ++k) {
      const size_t q = first_part[k];
      T p_sum = p_sums[q], u_sum = u_sums[q];
      if (plans[k].num_blocks > 0) {  // ((final + shard 0) + shard 1) + ...
        const size_t tail = q + static_cast<size_t>(plans[k].num_blocks);
        p_sum = R::combine(p_sums[tail], &p_sums[q], plans[k].num_blocks);
        u_sum = R::combine(u_sums[tail], &u_sums[q], plans[k].num_blocks);
      }
      scale[k] = K::scale(p_sum, u_sum, c);
    }
    std::vector<index_t> sizes(n);
    for (int k = 0; k < n; ++k) sizes[k] = vars.tensor(k).NumElements();
    RunOverTensors(ctx, sizes, [&](size_t k, index_t b, index_t e) {
      T* p = vars.data(static_cast<int>(k));
      const T* m = vars.data(n + static_cast<int>(k));
      const T* v = vars.data(2 * n + static_cast<int>(k));
      const T sk = scale[k];
      PYOPTIM_SIMD_LOOP
      for (index_t i = b; i < e; ++i) p[i] = K::finish(p[i], K::step(i, m, v, cc.data()), sk);
    });
  } else {
    (void)ctx, (void)vars, (void)n, (void)variant, (void)ec, (void)fused, (void)decay;
  }
}

template <class K>
bool ElementwiseHitRowsOnly(bool decay) {
  return pyoptim_elementwise::HitRowsOnly<K>(decay);
}

template <class T>
const std::vector<ElementwiseKernel<T>>& ElementwiseKernels() {
#define PYOPTIM_ENTRY(K)                                                                      \
  {pyoptim::K::kName,                                                                         \
   pyoptim::K::kSlots,                                                                        \
   pyoptim::K::kCoeffs,                                                                       \
   pyoptim::K::kVariants,                                                                     \
   pyoptim::K::kGraphRsqrt,                                                                   \
   &ElementwiseRange<pyoptim::K, T>,                                                          \
   &ElementwiseHitRowsOnly<pyoptim::K>,                                                       \
   pyoptim::K::kTensorNorms ? &TensorNormPasses<pyoptim::K, T> : nullptr},
  static const std::vector<ElementwiseKernel<T>> kernels{
      PYOPTIM_ELEMENTWISE_KERNELS(PYOPTIM_ENTRY)};
#undef PYOPTIM_ENTRY
  return kernels;
}

// Resource inputs: var [0, N), then the kernel's slots, slot j of variable k at N + j * N + k.
// Every input is checked (the kernel and its variant, counts, dtypes, shapes, the sparse
// gradients' indices) before anything is written.
template <class T>
class ApplyElementwiseOp : public OpKernel {
 public:
  explicit ApplyElementwiseOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("N", &n_));
    std::string name;
    OP_REQUIRES_OK(c, c->GetAttr("optimizer", &name));
    const auto& kernels = ElementwiseKernels<T>();
    std::string known;
    for (size_t k = 0; k < kernels.size(); ++k) {
      if (name == kernels[k].name) index_ = static_cast<int>(k);
      absl::StrAppend(&known, k ? ", " : "", kernels[k].name);
    }
    OP_REQUIRES(c, index_ >= 0,
                absl::InvalidArgumentError(absl::StrCat("pyoptim: optimizer '", name,
                                                        "' is not an element-wise kernel (",
                                                        known, ")")));
    const ElementwiseKernel<T>& k = kernels[index_];
    OP_REQUIRES_OK(c, c->GetAttr("form", &variant_));
    OP_REQUIRES(c, variant_ >= 0 && variant_ < k.variants,
                absl::InvalidArgumentError(absl::StrCat("pyoptim: ", name, " has ", k.variants,
                                                        " variants, got variant ", variant_)));
    int slots = 0, coefficients = 0;
    OP_REQUIRES_OK(c, c->GetAttr("num_slots", &slots));
    OP_REQUIRES_OK(c, c->GetAttr("num_coefficients", &coefficients));
    OP_REQUIRES(c, slots == k.slots * n_ && coefficients == k.coefficients,
                absl::InvalidArgumentError(absl::StrCat(
                    "pyoptim: ", name, " takes ", k.slots, " slots per variable (", k.slots * n_,
                    " for N = ", n_, ") and ", k.coefficients, " coefficients, got ", slots,
                    " and ", coefficients)));
    OP_REQUIRES_OK(c, ReadFlags(c, "decay", n_, &decay_));
    OP_REQUIRES_OK(c, ReadFlags(c, "sparse", n_, &sparse_));
    OP_REQUIRES_OK(c, c->GetAttr("graph_rsqrt", &graph_));
    OP_REQUIRES(c, !graph_ || k.graph_rsqrt,
                absl::InvalidArgumentError(absl::StrCat(
                    "pyoptim: ", name, " has no graph_rsqrt form (Keras' update has no a / sqrt(x))")));
    constexpr bool kEmulated = !std::is_same<T, float>::value || ::pyoptim_graph::kHaveTfRsqrtEmulation;
    OP_REQUIRES(c, !graph_ || kEmulated,
                absl::UnimplementedError(
                    "pyoptim: TensorFlow's float32 Rsqrt is emulated on x86-64 only"));
  }

  void Compute(OpKernelContext* ctx) override {
    const ElementwiseKernel<T>& kernel = ElementwiseKernels<T>()[index_];
    const int slots = kernel.slots;
    const int nres = n_ * (1 + slots);
    LockedVariables<T> vars(ctx, nres, n_);
    OP_REQUIRES_OK(ctx, vars.status());
    std::vector<T> coefficients(kernel.coefficients);
    for (int j = 0; j < kernel.coefficients; ++j) {
      const std::string name = absl::StrCat("coefficients[", j, "]");
      OP_REQUIRES_OK(ctx, ReadScalar<T>(ctx, nres + j, name.c_str(), &coefficients[j]));
    }
    pyoptim::ElementwiseCoeffs<T> c{coefficients.data(), T(0), T(0)};
    const int after = nres + kernel.coefficients;
    OP_REQUIRES_OK(ctx, ReadScalars<T>(ctx, after, {{"weight_decay", &c.weight_decay},
                                                    {"decay_learning_rate", &c.decay_lr}}));
    std::vector<const T*> g;
    std::vector<std::unique_ptr<SparseGrad<T>>> sg;
    OP_REQUIRES_OK(ctx, ReadGrads<T>(ctx, vars, after + 2, n_, 1 + slots, sparse_, &g, &sg));
    auto sizes = Sizes(vars, sg, [&](size_t k) { return kernel.hit_rows_only(decay_[k]); });
    // A kTensorNorms kernel's variables with a dense gradient are decayed and updated in its
    // norms' pass (fused), not here.
    std::vector<const T*> fused(n_, nullptr);
    if (kernel.norms != nullptr) {
      for (int k = 0; k < n_; ++k) {
        if (sg[k] == nullptr && g[k] != nullptr) {
          fused[k] = g[k];
          sizes[k] = 0;
        }
      }
    }
    RunOverTensors(ctx, sizes, [&](size_t k, index_t b, index_t e) {
      const int v = static_cast<int>(k);
      T* s[3] = {nullptr, nullptr, nullptr};
      for (int j = 0; j < slots; ++j) s[j] = vars.data(n_ + j * n_ + v);
      kernel.range(variant_, decay_[k], graph_, vars.data(v), s, g[k], sg[k].get(), b, e,
                   vars.tensor(v).NumElements(), c);
    });
    if (kernel.norms != nullptr) kernel.norms(ctx, vars, n_, variant_, c, fused, decay_);
    Count(static_cast<CallSlot>(kFirstElementwise + index_), n_);
  }

 private:
  int n_ = 0;
  int index_ = -1;
  int variant_ = 0;
  bool graph_ = false;
  std::vector<bool> decay_, sparse_;
};

class KernelNamesOp : public OpKernel {
 public:
  explicit KernelNamesOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({kCallSlots}), &out));
    auto names = out->vec<tstring>();
    const char* fixed[] = {"sgd", "rmsprop", "adam", "adam8bit"};
    for (int k = 0; k < kFirstElementwise; ++k) names(k) = fixed[k];
    const auto& kernels = ElementwiseKernels<float>();
    for (size_t k = 0; k < kernels.size(); ++k) names(kFirstElementwise + k) = kernels[k].name;
  }
};

class KernelCallsOp : public OpKernel {
 public:
  explicit KernelCallsOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({2, kCallSlots}), &out));
    auto m = out->matrix<int64_t>();
    for (int k = 0; k < kCallSlots; ++k) {
      m(0, k) = g_calls[k].load(std::memory_order_relaxed);
      m(1, k) = g_ops[k].load(std::memory_order_relaxed);
    }
  }
};

#define PYOPTIM_REGISTER(T)                                                             \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("PyoptimApplySgd").Device(DEVICE_CPU).TypeConstraint<T>("T"), ApplySgdOp<T>); \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("PyoptimApplyRmsprop").Device(DEVICE_CPU).TypeConstraint<T>("T"),            \
      ApplyRmspropOp<T>);                                                               \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("PyoptimApplyAdam").Device(DEVICE_CPU).TypeConstraint<T>("T"), ApplyAdamOp<T>); \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("PyoptimApplyAdam8bit").Device(DEVICE_CPU).TypeConstraint<T>("T"),           \
      ApplyAdam8bitOp<T>);                                                              \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("PyoptimApplyElementwise").Device(DEVICE_CPU).TypeConstraint<T>("T"),        \
      ApplyElementwiseOp<T>);

PYOPTIM_REGISTER(float)
PYOPTIM_REGISTER(double)
#undef PYOPTIM_REGISTER

REGISTER_KERNEL_BUILDER(Name("PyoptimKernelCalls").Device(DEVICE_CPU), KernelCallsOp);
REGISTER_KERNEL_BUILDER(Name("PyoptimKernelNames").Device(DEVICE_CPU), KernelNamesOp);

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
