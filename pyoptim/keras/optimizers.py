"""SGD, RMSprop, Adam and AdamW for Keras 3 whose update runs pyoptim's C++ kernels.

Each class subclasses the matching ``keras.optimizers`` class; clipping, EMA, gradient
accumulation, loss scaling, learning-rate schedules, distribution, slot variables, ``get_config``
and saving stay Keras' own code.  What changes is the step's update, one pipeline
(``_FastPathMixin._distributed_tf_update_step``):

1. **group** the step's (gradient, variable) pairs: every float32/float64 CPU variable the
   kernels serve, by dtype, whether its gradient is dense or a ``tf.IndexedSlices`` (an
   Embedding's: the op takes its values and indices and gives Keras' bits, see
   :func:`_gradient_operands`); the others (float16/bfloat16 variables, non-CPU variables, XLA,
   an op that could not be built) run Keras' own ``update_step`` in the same step, with one
   warning;
2. **coefficients** once per dtype and step, with the TensorFlow ops Keras uses in the
   variable's dtype (e.g. Adam's ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``), so every
   variable gets the bits Keras computes for it;
3. **one op** per dtype (per device under a strategy with several local devices) that updates
   all the group's variables and slots in place in one parallel pass (see
   ``_op/pyoptim_tf_ops.cc``); Keras' decoupled weight decay (``var - var * wd * lr``,
   honouring ``exclude_from_weight_decay``; inside ``tf.function`` as Grappler rewrites it)
   runs in the same pass.  Inside ``tf.function`` the op runs after every gradient of the step
   is computed, so that no variable is copied before its in-place update
   (:func:`_gradient_barrier`).

Grappler's rewrites of Keras' graph that the op reproduces are in ``_grappler`` (weight decay's
scalar product, SGD's ``gradient * learning_rate`` merged with the gradient's producer,
RMSprop's rsqrt and constant push-down).  ``opt.path_counts()``,
:func:`pyoptim.keras.kernel_calls` and :func:`pyoptim.keras.op_calls` tell what ran.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import keras
import tensorflow as tf
from keras import ops
from tensorflow.python.ops import resource_variable_ops

from . import _grappler, _loader, _packed
from ._reporting import ReportingMixin

_FAST_DTYPES = (tf.float32, tf.float64)
_gpu_present: Optional[bool] = None


def _gpu_devices_present() -> bool:
    global _gpu_present
    if _gpu_present is None:
        _gpu_present = bool(tf.config.list_logical_devices("GPU"))
    return _gpu_present


def _tf_variable(v: Any) -> Any:
    """The TensorFlow variable behind a Keras variable (as Keras' TF optimizer does)."""
    return v.value if isinstance(v, keras.Variable) else v


def _in_xla_context() -> bool:
    if tf.executing_eagerly():
        return False
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


_constants: Dict[Tuple[type, str, tf.DType], tf.Tensor] = {}


def _constant(value: Any, dtype: tf.DType) -> tf.Tensor:
    """``tf.convert_to_tensor(value, dtype)`` for a Python number; executing eagerly, the
    tensor is kept and reused (the same value, one conversion instead of one per step)."""
    if not tf.executing_eagerly():
        return tf.convert_to_tensor(value, dtype=dtype)
    key = (type(value), repr(value), dtype)  # repr: -0.0 and 0.0 are different constants
    tensor = _constants.get(key)
    if tensor is None:
        if len(_constants) >= 256:
            _constants.clear()
        tensor = _constants[key] = tf.convert_to_tensor(value, dtype=dtype)
    return tensor


def _operand(value: Any, dtype: tf.DType) -> Optional[tf.Tensor]:
    """``value`` converted the way ``keras.ops.multiply(value, x)`` converts it when ``x`` has
    ``dtype``: a Python number becomes a tensor of ``dtype`` (one rounding from the double), a
    tensor keeps its value and is cast.  None when Keras would compute in another dtype."""
    if isinstance(value, (int, float)):
        return _constant(value, dtype)
    try:
        t = tf.convert_to_tensor(value)
    except (TypeError, ValueError):
        return None
    if keras.backend.result_type(t.dtype.name, dtype.name) != dtype.name or t.shape.rank != 0:
        return None
    return tf.cast(t, dtype)


def _gradient_barrier(distribution: Any, grads: List[Any],
                      member: Callable[[tf.Tensor], bool]) -> List[tf.Operation]:
    """Inside a graph (``tf.function``): the ops that compute the gradients in ``grads`` (each
    replica's, under a distribution strategy; a ``tf.IndexedSlices``' values) for which
    ``member`` is true, for an op to wait for; none in eager mode.

    Why: the kernels update a variable in place, and TensorFlow first copies the variable's
    buffer (copy-on-write, a whole extra pass plus fresh pages) when a tensor read from it is
    still held by an op that has not finished.  In a training step that op is a backward matmul
    that multiplies a layer's output gradient by this layer's kernel, to compute the gradient
    of the layers below.  The step's op takes the gradients of its own variables as inputs, so
    it starts after those; the other gradients of the step (an Embedding's sparse gradient, a
    variable that runs Keras' update, another dtype's group) are given here: without them, the
    first Dense layer after an Embedding was copied in every step.  Only those: a control edge
    on a gradient that the op takes anyway orders nothing and can keep Grappler from fusing
    the gradient's producer with its consumers (measured: the transformer zoo model's step
    about 10% slower with every gradient in the barrier)."""
    if tf.executing_eagerly():
        return []
    producers = {id(op): op for g in grads if g is not None
                 for t in (getattr(x, "values", x) for x in distribution.experimental_local_results(g))
                 if tf.is_symbolic_tensor(t) and member(t)
                 for op in [_producer(t)]}
    return list(producers.values())


def _producer(tensor: tf.Tensor) -> tf.Operation:
    """The op that computes ``tensor``, looking through Identity / IdentityN: Grappler's
    dependency optimizer bypasses those (Keras passes the gradients through one IdentityN), so
    a control edge from them would order nothing."""
    for _ in range(32):
        op = tensor.op
        if op.type not in ("Identity", "IdentityN", "Snapshot") or not op.inputs:
            return op
        tensor = op.inputs[tensor.value_index if op.type == "IdentityN" else 0]
    return tensor.op


class _Group(NamedTuple):
    """The variables of one step that one op updates: one dtype."""

    dtype: tf.DType
    indices: List[int]  # positions in the step's (gradient, variable) list
    decay: List[bool]  # whether the op decays each variable (Keras' pending decay, fused)
    handles: Optional[List[List[tf.Tensor]]]  # see _handle_lists; None: looked up in the update


class _Plan(NamedTuple):
    """How a step's (gradient, variable) pairs are updated; see _FastPathMixin._plan."""

    groups: List[_Group]
    rest: List[Tuple[int, str, Optional[str]]]  # Keras' update_step: (position, reason, name)
    keras_decay: List[int]  # positions whose pending decay Keras' own pass runs
    keep: Tuple[Any, ...]  # the variables, alive while the plan is cached (its key holds ids)


_PLAN_CACHE_SIZE = 8


class _FastPathMixin(ReportingMixin):
    """The fused update: group the variables, compute the coefficients once, one op.

    Subclasses give ``_slots(variable)`` (the slot variables, in the op's order), and
    ``_fused_update(op, dtype, handles, grads, learning_rate, decay, scalars)`` that builds the
    op for one dtype group (``handles``: see :meth:`_handle_lists`); they may refine
    ``_scalars()`` (the Python hyperparameters the op takes, converted per dtype as Keras
    converts them) and ``_group_blocker(dtype)``."""

    def _barrier_member(self, gradient: tf.Tensor) -> bool:
        """Whether ``gradient`` may get a control edge to the barrier (see _gradient_barrier)."""
        return True

    def _slots(self, variable: Any) -> List[Any]:
        raise NotImplementedError

    def _scalars(self) -> List[Any]:
        return []

    def _group_blocker(self, dtype: tf.DType) -> Optional[str]:
        return None

    def _fused_update(self, op: Any, dtype: tf.DType, handles: List[List[tf.Tensor]],
                      grads: List[Any], learning_rate: Any, decay: List[bool],
                      scalars: List[tf.Tensor]) -> Any:
        raise NotImplementedError

    # -- Keras' hooks ---------------------------------------------------------------------

    def _apply_weight_decay(self, variables):
        # Keras decays every variable here, one pass each, before the update.  When the kernels
        # can serve, the decay is deferred to the update: the same arithmetic (inside
        # tf.function as Grappler rewrites it, see _grappler.decay_scaled), in the op's pass for
        # the variables it takes, Keras' own decay for the others.
        if self.weight_decay is None or self._fast_path_blocker() is not None:
            return super()._apply_weight_decay(variables)
        object.__setattr__(self, "_pyoptim_pending_decay", list(variables))

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        # A SavedModel of a function that ran the op in a graph needs the packed handles it
        # captured (_packed.PackedHandles); checkpoints keep Keras' layout.
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "savedmodel":
            children.update(_packed.savedmodel_children(self))
        return children

    def _check_variables_are_known(self, variables):
        # Keras looks every variable up by _var_key on every call (eagerly: every step).  The
        # variables the optimizer was built with, by identity, pass at once; any other goes
        # through Keras' check (which also knows a tf.Variable by its Keras variable).
        tracked = self._trainable_variables
        known = self.__dict__.get("_pyoptim_known")
        if known is None or known[0] is not tracked or known[1] != len(tracked):
            known = (tracked, len(tracked), {id(v) for v in tracked})
            object.__setattr__(self, "_pyoptim_known", known)  # bookkeeping, not state
        others = [v for v in variables if id(v) not in known[2]]
        if others:
            super()._check_variables_are_known(others)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Keras' version all-reduces the gradients across replicas, then merge_calls
        # _distributed_tf_update_step.  Executing eagerly with no tf.distribute strategy the
        # all-reduce returns every gradient unchanged (one eager call per gradient) and the
        # merge_call is a plain call: skip both, the values are the same.  Inside tf.function
        # Keras' graph is kept as it is: its Identity ops change what Grappler rewrites (e.g.
        # whether SGD's ``gradient * learning_rate`` merges with a clipping Mul).
        if (not tf.executing_eagerly() or tf.distribute.has_strategy()
                or self._distribution_strategy is not tf.distribute.get_strategy()):
            return self._keras_backend_update_step(grads, trainable_variables, learning_rate)
        pairs = [(g, _tf_variable(v)) for g, v in zip(grads, trainable_variables)]
        self._distributed_tf_update_step(self._distribution_strategy, pairs, learning_rate)

    def _keras_backend_update_step(self, grads, trainable_variables, learning_rate):
        """Keras' ``_backend_update_step`` (all-reduce, then ``_distributed_tf_update_step``
        in a merge_call); a subclass whose Keras class does more there may narrow it."""
        return super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # Keras calls this once per step (cross-replica context, one thread), in graph and eager
        # mode alike: the pipeline.
        pending = self.__dict__.get("_pyoptim_pending_decay")
        object.__setattr__(self, "_pyoptim_pending_decay", None)
        grads_and_vars = list(grads_and_vars)
        blocker = self._fast_path_blocker()
        if blocker is not None:
            for _ in grads_and_vars:
                self._fallback(blocker)
            if pending:
                super()._apply_weight_decay(pending)
            return super()._distributed_tf_update_step(distribution, grads_and_vars,
                                                       learning_rate)
        # 1. group
        plan = self._plan(grads_and_vars, pending)
        for _, reason, name in plan.rest:
            self._fallback(reason, name)
        rest = [grads_and_vars[i] for i, _, _ in plan.rest]
        keras_decay = [grads_and_vars[i][1] for i in plan.keras_decay]
        # 2. coefficients: each group's hyperparameters in its dtype (or Keras' update for it)
        runs = []
        for group in plan.groups:
            reason = self._group_blocker(group.dtype)
            scalars = self._converted_scalars(group.dtype) if reason is None else None
            if reason is None and scalars is None:
                reason = "a hyperparameter is not a scalar of the variable's dtype"
            if reason is None:
                runs.append((group, scalars))
                continue
            for i, decayed in zip(group.indices, group.decay):
                self._fallback(reason)
                rest.append(grads_and_vars[i])
                if decayed:
                    keras_decay.append(grads_and_vars[i][1])
        if keras_decay:
            super()._apply_weight_decay(keras_decay)
        # 3. one op per group, after every gradient of the step is computed (graph mode)
        previous = self.__dict__.get("_pyoptim_barrier")
        try:
            for group, scalars in runs:
                mine = set(group.indices)
                others = [g for i, (g, _) in enumerate(grads_and_vars) if i not in mine]
                object.__setattr__(self, "_pyoptim_barrier",  # bookkeeping, not tracked state
                                   _gradient_barrier(distribution, others, self._barrier_member))
                self._run_group(distribution, group, [grads_and_vars[i] for i in group.indices],
                                learning_rate, scalars)
            if rest:
                object.__setattr__(self, "_pyoptim_barrier", previous)
                super()._distributed_tf_update_step(distribution, rest, learning_rate)
        finally:
            object.__setattr__(self, "_pyoptim_barrier", previous)

    # -- the pipeline -----------------------------------------------------------------------

    def _plan(self, grads_and_vars: List[Tuple[Any, Any]],
              pending: Optional[List[Any]]) -> _Plan:
        """The step's grouping: by dtype, the pairs the op takes (and which of them it decays),
        the others with the reason, and the variables whose pending decay Keras runs.

        Executing eagerly with no tf.distribute strategy, a custom loop repeats the same step:
        the plan (with the variables' and slots' handles) is kept, keyed by the variables'
        identities, which gradients are sparse and which variables await decay, so a step does
        no per-variable Python work beyond collecting its gradients."""
        cacheable = tf.executing_eagerly() and not tf.distribute.has_strategy()
        key = None
        if cacheable:
            key = (tuple(map(id, (v for _, v in grads_and_vars))),
                   tuple(isinstance(g, tf.IndexedSlices) for g, _ in grads_and_vars),
                   None if pending is None else tuple(map(id, pending)))
            cache = self.__dict__.get("_pyoptim_plans")
            if cache is None:
                cache = {}
                object.__setattr__(self, "_pyoptim_plans", cache)  # bookkeeping, not state
            plan = cache.get(key)
            if plan is not None:
                return plan
        decay_keys = {self._var_key(v) for v in pending} if pending else set()
        by_dtype: Dict[tf.DType, List[int]] = {}
        rest: List[Tuple[int, str, Optional[str]]] = []
        keras_decay: List[int] = []
        for i, (grad, var) in enumerate(grads_and_vars):
            reason = self._variable_blocker(grad, var)
            if reason is None:
                by_dtype.setdefault(tf.as_dtype(var.dtype), []).append(i)
                continue
            # Only this variable falls back; the warning names it (without TF's ":0").
            rest.append((i, reason, str(getattr(var, "path", None) or var.name).split(":")[0]))
            if self._var_key(var) in decay_keys:
                keras_decay.append(i)
        groups = []
        for dtype, indices in by_dtype.items():
            decay = []
            for i in indices:
                var = grads_and_vars[i][1]
                # exclude_from_weight_decay: neither the op nor Keras decays the variable
                decay.append(self._var_key(var) in decay_keys and bool(self._use_weight_decay(var)))
            variables = [grads_and_vars[i][1] for i in indices]
            groups.append(_Group(dtype, indices, decay,
                                 self._handle_lists(variables) if cacheable else None))
        plan = _Plan(groups, rest, keras_decay, tuple(v for _, v in grads_and_vars))
        if cacheable:
            if len(cache) >= _PLAN_CACHE_SIZE:
                cache.clear()
            cache[key] = plan
        return plan

    def _handle_lists(self, variables: Sequence[Any],
                      kinds: Optional[Sequence[int]] = None) -> List[Optional[List[tf.Tensor]]]:
        """The op's resource inputs: ``[[each variable's handle], [each one's first slot's
        handle], [second slot's], ...]`` (slots in ``_slots`` order; with ``kinds``, only those
        slot lists, None in the others' places).  Under a mirrored strategy, called inside the
        update, a variable's handle is this device's copy."""
        slots = [self._var_info(v)[1] for v in variables]
        count = len(slots[0]) if slots else 0
        wanted = range(count) if kinds is None else kinds
        return [self._resource_handles(variables)] + [
            self._resource_handles([s[j] for s in slots]) if j in wanted else None
            for j in range(count)]

    def _resource_handles(self, variables: Sequence[Any]) -> List[tf.Tensor]:
        """One list of the op's resource inputs: inside a graph the handles packed in one
        captured tensor (:mod:`._packed`: one capture instead of one per variable), else each
        variable's own handle."""
        packed = _packed.packed_handles(self, [_tf_variable(v) for v in variables])
        return packed if packed is not None else _handles(variables)

    def _converted_scalars(self, dtype: tf.DType) -> Optional[List[tf.Tensor]]:
        """The op's Python hyperparameters converted by :func:`_operand` (None if one cannot)."""
        try:
            converted = [_operand(x, dtype) for x in self._scalars()]
        except Exception:  # noqa: BLE001 - e.g. a callable hyperparameter: Keras decides
            return None
        return None if any(x is None for x in converted) else converted

    def _run_group(self, distribution: Any, group: _Group, pairs: List[Tuple[Any, Any]],
                   learning_rate: Any, scalars: List[tf.Tensor]) -> None:
        """One op for the group (per device under a mirrored strategy: Keras' ``update`` runs
        ``fused`` on each device with that device's copies of the variables and gradients)."""
        op = _loader.load()
        grads = [g for g, _ in pairs]
        variables = [v for _, v in pairs]
        self._pyoptim_stats().fast += len(pairs)

        def fused(first, others, grads, learning_rate):
            handles = group.handles or self._handle_lists([first] + list(others))
            with self._after_all_gradients():
                return self._fused_update(op, group.dtype, handles, list(grads), learning_rate,
                                          group.decay, scalars)

        distribution.extended.update(variables[0], fused,
                                     args=(variables[1:], grads, learning_rate), group=False)

    def _after_all_gradients(self) -> Any:
        """Context for creating a kernel op: it runs after every gradient of the step is
        computed (its own as inputs, the others through :func:`_gradient_barrier`)."""
        return tf.control_dependencies(self.__dict__.get("_pyoptim_barrier") or [])

    def _fast_path_blocker(self) -> Optional[str]:
        """Why no variable of this update can take the kernels (None: they can)."""
        if keras.backend.backend() != "tensorflow":
            return f"the Keras backend is {keras.backend.backend()!r}, not 'tensorflow'"
        if _in_xla_context():
            return "the update is compiled with XLA (jit_compile=True)"
        if _loader.load() is None:
            return f"the TensorFlow op is unavailable: {_loader.error()}"
        return None

    def _variable_blocker(self, gradient: Any, variable: Any) -> Optional[str]:
        """Why this one variable cannot take the kernels (None: it can)."""
        if isinstance(gradient, tf.IndexedSlices) and len(variable.shape) == 0:
            return "its gradient is sparse but the variable is a scalar"
        return self._var_info(variable)[0]

    def _var_info(self, variable: Any) -> Tuple[Optional[str], List[Any]]:
        """``(reason, slots)`` for ``variable``: why it cannot take the kernels whatever its
        gradient (dtype, resource, device; None: it can) and its slot variables.  Computed once
        per variable (a variable keeps its dtype, device and slots), so that a step costs no
        per-variable checks: eager steps repeat them every call."""
        cache = self.__dict__.get("_pyoptim_var_info")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_pyoptim_var_info", cache)  # bookkeeping, not state
        key = self._var_key(variable)
        info = cache.get(key)
        if info is None:
            slots = self._slots(variable)
            info = cache[key] = (self._static_blocker(variable, slots), slots)
        return info

    def _static_blocker(self, variable: Any, slots: List[Any]) -> Optional[str]:
        dtype = tf.as_dtype(variable.dtype)
        if dtype not in _FAST_DTYPES:
            return f"its dtype is {dtype.name} (the kernels have float32 and float64)"
        strategy = tf.distribute.get_strategy()
        for v in [variable] + slots:
            # Each device's copy under a distribution strategy (the grouping runs in the
            # cross-replica context, where a mirrored variable has no single handle).
            for tv in strategy.experimental_local_results(_tf_variable(v)):
                if not resource_variable_ops.is_resource_variable(tv):
                    return f"{getattr(v, 'name', v)} is not a resource variable"
                device = getattr(tv, "device", "") or ""
                kind = tf.DeviceSpec.from_string(device).device_type if device else None
                if kind is not None and kind != "CPU":
                    return f"it is on {kind} (the op runs on CPU)"
                if kind is None and _gpu_devices_present():
                    return "it has no CPU placement while a GPU is present"
        return None

    def _weight_decay_operands(self, dtype: tf.DType, lr: tf.Tensor, decay: List[bool]
                               ) -> Tuple[tf.Tensor, tf.Tensor]:
        """``(decay_lr, wd)`` for the kernels' decay ``p - p * wd * decay_lr``: ``lr`` and
        ``wd`` as Keras' ``_apply_weight_decay`` casts them (zero wd when unused); where Grappler
        computes Keras' decay as ``p - p * (wd * lr)`` (:func:`_grappler.decay_scaled`),
        ``(1, wd * lr)``: the same bits, since ``x * 1 == x``.  ``lr`` is the learning rate
        already cast to ``dtype`` for the update (Keras casts the same value again)."""
        if not any(decay):
            return lr, _constant(0.0, dtype)
        wd = tf.cast(self.weight_decay, dtype)
        if _grappler.decay_scaled():
            return _constant(1.0, dtype), wd * lr
        return lr, wd


def _cast(x: Any, dtype: tf.DType) -> Any:
    """``ops.cast(x, dtype)``, skipped when ``x`` already has ``dtype`` (a cast to the same dtype
    adds no op and changes no bit; skipping it saves eager calls)."""
    return x if getattr(x, "dtype", None) == dtype else ops.cast(x, dtype)


def _gradient_operands(grads: Sequence[Any], dtype: tf.DType, scale: Optional[tf.Tensor] = None
                       ) -> Tuple[List[tf.Tensor], List[tf.Tensor], List[bool]]:
    """The op's ``grad``, ``indices`` and ``sparse`` operands: each gradient cast to ``dtype`` as
    Keras' ``update_step`` casts it; a ``tf.IndexedSlices`` gives its values (times ``scale``
    when given: SGD's ``gradient * learning_rate``, the same Mul node as Keras') and its indices.
    The op sums the slices per row in index order, as Keras' densification
    (``unsorted_segment_sum``) does, and checks every index before it writes anything."""
    values, indices, sparse = [], [], []
    for gradient in grads:
        if isinstance(gradient, tf.IndexedSlices):
            v = _cast(gradient.values, dtype)
            values.append(ops.multiply(v, scale) if scale is not None else v)
            indices.append(gradient.indices)
            sparse.append(True)
        else:
            values.append(_cast(gradient, dtype))
            sparse.append(False)
    return values, indices, sparse


def _handle(v: Any) -> tf.Tensor:
    return _tf_variable(v).handle


def _handles(variables: Sequence[Any]) -> List[tf.Tensor]:
    return [_handle(v) for v in variables]


@keras.saving.register_keras_serializable(package="pyoptim")
class SGD(_FastPathMixin, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose update runs pyoptim's C++ kernel (same arguments, same bits).

    Per element, with ``lr`` and ``momentum`` in the variable's dtype (after Keras' decoupled
    weight decay ``p = p - p * wd * lr``, in the same pass)::

        no momentum:  p = p - g * lr
        momentum:     m = m * momentum - g * lr;  p = p + m
        Nesterov:     m = m * momentum - g * lr;  p = p + (m * momentum - g * lr)
    """

    def _barrier_member(self, gradient: tf.Tensor) -> bool:
        # A control edge would give the gradient's producer a second consumer, and Grappler
        # then no longer merges it with the ``gradient * learning_rate`` below as it does in
        # Keras' graph (see _fused_update): such gradients stay out of the barrier.
        return not _grappler.may_merge_into(gradient)

    def _slots(self, variable):
        return [self.momentums[self._get_variable_index(variable)]] if self.momentum != 0 else []

    def _fused_update(self, op, dtype, handles, grads, learning_rate, decay, scalars):
        slots = handles[1] if self.momentum != 0 else []
        # The same conversions as keras.optimizers.SGD.update_step.
        lr = ops.cast(learning_rate, dtype)
        momentum = ops.cast(self.momentum, dtype) if slots else _constant(0.0, dtype)
        unit_lr, prepared = [], []
        for gradient in grads:
            if isinstance(gradient, tf.IndexedSlices):
                # Keras: scatter_sub(var, g * lr), or m * momentum - S(g * lr): the op takes
                # Keras' own ``values * lr`` node (made by _gradient_operands) and a unit lr.
                unit_lr.append(True)
                prepared.append(gradient)
                continue
            gradient = _cast(gradient, dtype)
            # Keras' gradient * learning_rate is the gradient's only consumer, so Grappler merges
            # it with a producing Mul (g * scale from global_clipnorm becomes g * (scale * lr))
            # or Div by a constant (loss scaling, accumulation: rewritten as a Mul first), which
            # rounds differently.  Build that same Mul node here, so that Grappler rewrites it
            # the same way, and let the kernel use lr = 1 for it (x * 1 == x exactly).
            merge = _grappler.may_merge_into(gradient)
            unit_lr.append(merge)
            prepared.append(ops.multiply(gradient, lr) if merge else gradient)
        values, indices, sparse = _gradient_operands(prepared, dtype, scale=lr)
        decay_lr, wd = self._weight_decay_operands(dtype, lr, decay)
        return op.pyoptim_apply_sgd(var=handles[0], momentum_buffer=slots,
                                    learning_rate=lr, momentum=momentum, weight_decay=wd,
                                    decay_learning_rate=decay_lr, grad=values, indices=indices,
                                    nesterov=bool(self.nesterov), decay=decay, unit_lr=unit_lr,
                                    sparse=sparse)


@keras.saving.register_keras_serializable(package="pyoptim")
class RMSprop(_FastPathMixin, keras.optimizers.RMSprop):
    """``keras.optimizers.RMSprop`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).

    Per element, scalars in the variable's dtype (epsilon inside the square root, as Keras; after
    Keras' decoupled weight decay ``p = p - p * wd * lr``, in the same pass)::

        v = rho * v + (1 - rho) * g^2
        centered:  a = rho * a + (1 - rho) * g;  d = (v - a^2) + eps;  else d = v + eps
        inc = (lr * g) / sqrt(d)
        momentum:  mom = momentum * mom + inc;  p = p - mom;  else p = p - inc
    """

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return ([self._velocities[index]]
                + ([self._momentums[index]] if self.momentum > 0 else [])
                + ([self._average_gradients[index]] if self.centered else []))

    def _scalars(self):
        # Keras: ops.multiply(rho, v), ops.multiply(1 - rho, ...), + self.epsilon,
        # ops.multiply(self.momentum, mom): Python numbers meet tensors of the variable's dtype.
        return [self.rho, 1 - self.rho, self.epsilon, self.momentum if self.momentum > 0 else 0.0]

    def _rewrites(self) -> Optional[Tuple[bool, bool]]:
        # Inside tf.function Grappler rewrites Keras' expression; the op reproduces it.
        return _grappler.rewrites(bool(self.centered))

    def _group_blocker(self, dtype):
        rewrites = self._rewrites()
        if rewrites is None:
            return ("centered RMSprop in a user's tf.function: Keras' graph arithmetic depends on "
                    "whether that function returns a value, unknown while tracing")
        rsqrt_mul, epsilon_first = rewrites
        if not (rsqrt_mul or epsilon_first) or _grappler.in_self_test():
            return None
        if _grappler.verified(RMSprop, dtype.name, bool(self.centered), rsqrt_mul, epsilon_first):
            return None
        return ("the op could not reproduce keras.optimizers.RMSprop's graph-mode arithmetic "
                "(Grappler's rsqrt rewrite) with this TensorFlow on this CPU")

    def _fused_update(self, op, dtype, handles, grads, learning_rate, decay, scalars):
        has_momentum, centered = self.momentum > 0, bool(self.centered)
        rsqrt_mul, epsilon_first = self._rewrites() or (False, False)
        rho, one_minus_rho, epsilon, momentum = scalars
        lr = ops.cast(learning_rate, dtype)
        decay_lr, wd = self._weight_decay_operands(dtype, lr, decay)
        values, indices, sparse = _gradient_operands(grads, dtype)
        return op.pyoptim_apply_rmsprop(
            var=handles[0], velocity=handles[1],
            momentum_buffer=handles[2] if has_momentum else [],
            average_grad=handles[-1] if centered else [],
            learning_rate=lr, rho=rho, one_minus_rho=one_minus_rho, epsilon=epsilon,
            momentum=momentum, weight_decay=wd, decay_learning_rate=decay_lr,
            grad=values, indices=indices, sparse=sparse,
            rsqrt_mul=rsqrt_mul, epsilon_first=epsilon_first, decay=decay)


@keras.saving.register_keras_serializable(package="pyoptim")
class Adam(_FastPathMixin, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose update runs pyoptim's C++ kernel (same arguments, same bits).

    Once per step and dtype, with Keras' ops in the variable's dtype:
    ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``.  Per element (after Keras' decoupled
    weight decay ``p = p - p * wd * lr``, in the same pass)::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g^2 - v) * (1 - beta_2)
        AMSGrad:  v_hat = max(v_hat, v), used instead of v below
        p = p - (m * alpha) / (sqrt(v) + eps)
    """

    _lazy = False  # LazyAdam: sparse gradients update the rows present only

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return ([self._momentums[index], self._velocities[index]]
                + ([self._velocity_hats[index]] if self.amsgrad else []))

    def _scalars(self):
        # Keras: ops.multiply(..., 1 - self.beta_1), ops.add(..., self.epsilon).
        return [1 - self.beta_1, 1 - self.beta_2, self.epsilon]

    def _alpha(self, lr: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
        """``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` with the lines of
        keras.optimizers.Adam.update_step (``lr`` already cast to ``dtype``), once per step."""
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        return lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)

    def _fused_update(self, op, dtype, handles, grads, learning_rate, decay, scalars):
        lr = ops.cast(learning_rate, dtype)
        alpha = self._alpha(lr, dtype)
        one_minus_beta_1, one_minus_beta_2, epsilon = scalars
        decay_lr, wd = self._weight_decay_operands(dtype, lr, decay)
        values, indices, sparse = _gradient_operands(grads, dtype)
        return op.pyoptim_apply_adam(
            var=handles[0], m=handles[1], v=handles[2],
            v_hat=handles[3] if self.amsgrad else [],
            alpha=alpha, one_minus_beta_1=one_minus_beta_1, one_minus_beta_2=one_minus_beta_2,
            epsilon=epsilon, learning_rate=decay_lr, weight_decay=wd,
            grad=values, indices=indices, sparse=sparse, lazy=self._lazy, decay=decay)


@keras.saving.register_keras_serializable(package="pyoptim")
class AdamW(Adam, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` (Adam with decoupled weight decay, ``weight_decay=0.004`` by
    default) whose update, decay included, runs pyoptim's C++ kernel in one pass (same
    arguments, same bits).  Per element: ``p = p - p * wd * lr``, then Adam's update (see
    :class:`Adam`)."""


@keras.saving.register_keras_serializable(package="pyoptim")
class LazyAdam(Adam):
    """Adam whose sparse (``tf.IndexedSlices``, e.g. Embedding) updates touch only the rows
    present in the batch, as tensorflow-addons' ``LazyAdam`` did; ``keras.optimizers.Adam``'s
    arguments, defaults and config.

    For a ``tf.IndexedSlices`` gradient, the slices of each row present are summed first (in
    index order, from +0.0), then Keras' Adam arithmetic runs on those rows only::

        g = sum of the row's slices
        m = m + (g - m) * (1 - beta_1);  v = v + (g^2 - v) * (1 - beta_2)
        AMSGrad: v_hat = max(v_hat, v), used instead of v below
        p = p - (m * alpha) / (sqrt(v) + eps),   alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)

    The rows outside the batch keep their ``m``, ``v`` (and ``v_hat``) and parameters, and the
    work is proportional to the rows present, not to the table.  Dense gradients get
    ``keras.optimizers.Adam``'s update, to the bit.

    What lazy updates mean for convergence: a row's moments decay only in the steps that see
    the row (not every step, as in Adam), so a rare row's ``m`` and ``v`` remember its last
    gradients for longer and its step is larger than Adam's would be.  For embeddings of large
    vocabularies this usually trains as well as Adam, much faster, but it is a different
    algorithm: the same losses are not guaranteed, and ``beta_1`` / ``beta_2`` tuned for Adam may
    need retuning.

    Weight decay (``weight_decay=...``) is Keras' decoupled decay ``p = p - p * wd * lr``, in
    every row and every step as with ``keras.optimizers.Adam`` (not lazy): a variable that
    decays costs a pass over its whole table.  With ``gradient_accumulation_steps`` Keras sums
    the gradients in dense accumulators, so the update it applies is dense: Adam's.
    """

    _lazy = True

    def update_step(self, gradient, variable, learning_rate):
        # Keras' code path (where the op cannot serve: XLA, other dtypes and devices): the same
        # lazy arithmetic with TensorFlow ops.
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        alpha = self._alpha(ops.cast(learning_rate, dtype), dtype)
        rows, position = tf.unique(gradient.indices)
        g = tf.math.unsorted_segment_sum(ops.cast(gradient.values, dtype), position,
                                         tf.shape(rows)[0])
        index = self._get_variable_index(variable)
        m, v = _tf_variable(self._momentums[index]), _tf_variable(self._velocities[index])
        m_rows, v_rows = tf.gather(m, rows), tf.gather(v, rows)
        m_rows = m_rows + (g - m_rows) * _operand(1 - self.beta_1, dtype)
        v_rows = v_rows + (g * g - v_rows) * _operand(1 - self.beta_2, dtype)
        shape = tf.shape(variable, out_type=rows.dtype)
        m.scatter_update(tf.IndexedSlices(m_rows, rows, shape))
        v.scatter_update(tf.IndexedSlices(v_rows, rows, shape))
        if self.amsgrad:
            v_hat = _tf_variable(self._velocity_hats[index])
            v_rows = tf.maximum(tf.gather(v_hat, rows), v_rows)
            v_hat.scatter_update(tf.IndexedSlices(v_rows, rows, shape))
        step = (m_rows * alpha) / (tf.sqrt(v_rows) + _operand(self.epsilon, dtype))
        _tf_variable(variable).scatter_sub(tf.IndexedSlices(step, rows, shape))


for _cls, _base in ((SGD, keras.optimizers.SGD), (RMSprop, keras.optimizers.RMSprop),
                    (Adam, keras.optimizers.Adam), (AdamW, keras.optimizers.AdamW),
                    (LazyAdam, keras.optimizers.Adam)):
    if _base.__doc__:
        _cls.__doc__ = (_cls.__doc__ or "") + "\n    Keras' documentation:\n" + _base.__doc__
del _cls, _base
