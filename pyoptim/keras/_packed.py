"""The op's handles as one captured tensor per list (inside ``tf.function``).

A ``tf.function`` passes every tensor it captures on every call, and TensorFlow's Python side
hashes each one first (``FunctionType.__hash__``): a function that captures the 300 slot handles
of 100 Adam variables costs about 0.5 ms a call more than one that captures them as one tensor
(measured: 400 captured handles 1.08 ms, 100 handles and one packed tensor 0.26 ms).  So inside a
graph each list of the op's resource inputs (the slots of one kind; the variables, unless the
graph has captured their handles already) is one eager tensor of dtype resource and shape ``[n]``
(the handles stacked, made once per list and kept on the optimizer), captured once and given at
every position of the list: the op takes element ``k % n`` of it at position ``k``
(``LockedResources`` in ``_op/pyoptim_tf_ops.cc``).  Nothing is unpacked in the graph (an Unpack
of the handles measured about 1 us per handle).

Saving.  ``tf.saved_model.save`` exports a function's captured resource tensors only if a tracked
object provides them.  :class:`PackedHandles` is that object: a ``TrackableResource`` whose
handle is the packed tensor and whose creator stacks its member variables' handles (in the export
graph, the exported variables'; after loading, the restored ones').  The optimizer lists its
packs as children for SavedModels only (:func:`savedmodel_children`), so checkpoints keep Keras'
layout.

Ordering.  TensorFlow's automatic control dependencies (ACD) order the ops of a function that
use the same resource tensor; a variable read by user code in the same function (``ReadVariableOp``
on the variable's own captured handle) would not share a tensor with the op's packed input.
:func:`_resolve_packed_handles`, registered with ``auto_control_deps``, closes that gap: an op
that takes a packed tensor (the update, or a call, ``If`` or ``While`` op that passes it on to
a nested function) also writes, for ACD, every member handle that its graph captured, so reads
before the update run before it and reads after it see it.
"""
from __future__ import annotations

import copy
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
from tensorflow.python.distribute import values_util
from tensorflow.python.framework import auto_control_deps
from tensorflow.python.framework.ops import EagerTensor

# id(packed eager tensor) -> (the tensor, ids of its member handles, the members): strong
# references, so that no id is reused while an entry exists; entries go with their optimizer.
_PACKS: Dict[int, Tuple[tf.Tensor, Tuple[int, ...], Tuple[tf.Tensor, ...]]] = {}


class PackedHandles(tf.saved_model.experimental.TrackableResource):
    """One packed tensor of variable handles, as a resource that a SavedModel can export and
    restore (``tf.stack`` of the members' handles)."""

    def __init__(self, members: Sequence[Any], packed: tf.Tensor):
        super().__init__(device=packed.device)
        self._members = list(members)  # plain list: not tracked in checkpoints
        self._resource_handle = packed

    def _create_resource(self) -> tf.Tensor:
        return _stack([v.handle for v in self._members])

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "savedmodel":
            children.update({f"member_{i}": v for i, v in enumerate(self._members)})
        return children

    def _deserialization_dependencies(self, children):
        return {k: v for k, v in children.items() if k.startswith("member_")}

    def _export_to_saved_model_graph(self, object_map, tensor_map, **kwargs):
        # The members are exported first (_deserialization_dependencies): stack their copies.
        new = copy.copy(self)
        with tf.device(self._resource_device):
            new._resource_handle = _stack([tensor_map[v.handle] for v in self._members])
        object_map[self] = new
        tensor_map[self.resource_handle] = new.resource_handle
        return [self.resource_handle]


def _stack(handles: Sequence[tf.Tensor]) -> tf.Tensor:
    """The handles as one tensor of shape [n].  The Reshape drops the Pack's merged handle data
    (the variables' shapes), which a loaded SavedModel would read as a scalar handle's."""
    return tf.reshape(tf.stack(handles), [len(handles)])


def savedmodel_children(owner: Any) -> Dict[str, PackedHandles]:
    """``owner``'s packs as SavedModel children (``_pyoptim_packed_<k>``), each one's
    :class:`PackedHandles` made on the first save (only a SavedModel needs it)."""
    cache = owner.__dict__.get("_pyoptim_packs") or {}
    children = {}
    for k, (key, entry) in enumerate(list(cache.items())):
        if entry[3] is None:
            entry = cache[key] = entry[:3] + (PackedHandles(entry[0], entry[1]),)
        children[f"_pyoptim_packed_{k}"] = entry[3]
    return children


# Per graph (weakly): (number of captures, {id(internal): external}, {id(eager): internal}).
_GRAPH_CAPTURES: "weakref.WeakKeyDictionary[Any, Tuple[int, Dict[int, Any], Dict[int, Any]]]" = (
    weakref.WeakKeyDictionary())


def _component(variable: Any) -> Optional[Any]:
    """The ``tf.Variable`` that this device updates: ``variable`` itself, or under a
    ``tf.distribute`` strategy (inside its ``update``) this replica's copy; None if unknown."""
    values = getattr(variable, "_values", None)
    if values is None:
        return variable
    replica = values_util.get_current_replica_id_as_int()
    return None if replica is None or replica >= len(values) else values[replica]


def packed_handles(owner: Any, variables: Sequence[Any]) -> Optional[List[tf.Tensor]]:
    """Inside a graph: the op's resource input list for ``variables`` (TensorFlow variables),
    the one packed tensor of their handles at each of the ``n`` positions; None (the caller
    passes the handles one by one) executing eagerly, when a handle is not an eager tensor, or
    when the graph has captured every handle already.  The packed tensor is made once per list
    of variables and kept on ``owner`` (the optimizer)."""
    if tf.executing_eagerly() or not variables:
        return None
    components = [_component(v) for v in variables]
    if any(c is None for c in components):
        return None
    cache = owner.__dict__.get("_pyoptim_packs")
    if cache is None:
        cache = {}
        object.__setattr__(owner, "_pyoptim_packs", cache)  # bookkeeping, not state
        weakref.finalize(owner, _forget, cache)
    key = tuple(map(id, components))
    entry = cache.get(key)
    if entry is None:
        with tf.init_scope():
            members = tuple(c.handle for c in components)
            if not all(isinstance(h, EagerTensor) for h in members):
                return None
            with tf.device(members[0].device):
                packed = _stack(members)
            # components: keeps the ids unique; the PackedHandles: see savedmodel_children
            entry = cache[key] = (tuple(components), packed, members, None)
        _PACKS[id(packed)] = (packed, tuple(map(id, members)), members)
    # Handles the graph has captured already (a model's variables, read by its forward pass)
    # cost no further capture: those are passed as they are.
    captured = _graph_captures(tf.compat.v1.get_default_graph())[1]
    if all(id(h) in captured for h in entry[2]):
        return None
    return [entry[1]] * len(components)


def _forget(cache: Dict[Any, Tuple[Any, tf.Tensor, Any, Any]]) -> None:
    for _, packed, _, _ in cache.values():
        _PACKS.pop(id(packed), None)


def _graph_captures(graph: Any) -> Tuple[Dict[int, Any], Dict[int, Any]]:
    """``({id(internal): external}, {id(eager tensor): internal})`` for ``graph``'s captures,
    an external followed through the enclosing graphs' captures to its eager tensor."""
    captures = getattr(graph, "captures", None) or []
    cached = _GRAPH_CAPTURES.get(graph)
    if cached is not None and cached[0] == len(captures):
        return cached[1], cached[2]
    external = {id(internal): ext for ext, internal in captures}
    by_eager = {}
    for ext, internal in captures:
        eager = _to_eager(getattr(graph, "outer_graph", None), ext)
        if eager is not None:
            by_eager[id(eager)] = internal
    _GRAPH_CAPTURES[graph] = (len(captures), external, by_eager)
    return external, by_eager


def _to_eager(graph: Any, tensor: Any) -> Optional[Any]:
    """The eager tensor that ``tensor`` (in ``graph``) captures, through nested graphs."""
    for _ in range(64):
        if isinstance(tensor, EagerTensor):
            return tensor
        if graph is None:
            return None
        external = _graph_captures(graph)[0].get(id(tensor))
        if external is None:
            return None
        tensor, graph = external, getattr(graph, "outer_graph", None)
    return None


def _members(op_graph: Any, tensor: Any) -> Optional[Tuple[int, ...]]:
    """Ids of the member handles of the packed tensor that ``tensor`` (an input of an op in
    ``op_graph``) captures; None for other tensors."""
    if tensor.op.type != "Placeholder":
        return None
    eager = _to_eager(op_graph, tensor)
    entry = _PACKS.get(id(eager)) if eager is not None else None
    return None if entry is None else entry[1]


@auto_control_deps.register_acd_resource_resolver
def _resolve_packed_handles(op: Any, reads: Any, writes: Any) -> bool:
    """ACD resolver: an op taking a packed tensor writes each member handle captured in its
    graph (see the module's docstring)."""
    if not _PACKS:
        return False
    updated = False
    for tensor in list(reads) + list(writes):
        members = _members(op.graph, tensor)
        if not members:
            continue
        by_eager = _graph_captures(op.graph)[1]
        for member in members:
            internal = by_eager.get(member)
            if internal is not None and internal not in writes:
                writes.add(internal)
                updated = True
    return updated
