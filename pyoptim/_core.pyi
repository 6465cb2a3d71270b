"""Type stubs for pyoptim's compiled core (csrc/module.cpp).  Formulas: see the
docstrings of the functions, or README.md."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: Optional[np.ndarray] = None,
    *,
    learning_rate: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: Optional[float] = None,
) -> None: ...
def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray,
    *,
    learning_rate: float = 0.001,
    rho: float = 0.9,
    epsilon: float = 1e-07,
    momentum: float = 0.0,
    momentum_buffer: Optional[np.ndarray] = None,
    average_grad: Optional[np.ndarray] = None,
    weight_decay: Optional[float] = None,
) -> None: ...
def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    *,
    step: int,
    learning_rate: float = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-07,
    v_hat: Optional[np.ndarray] = None,
    weight_decay: Optional[float] = None,
) -> None: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def set_isa(name: str) -> None: ...
def get_isa() -> str: ...
def _build_info() -> Dict[str, Any]: ...
def elementwise_kernels() -> List[str]: ...
def elementwise_multi(
    kernel: str, params: Sequence[np.ndarray], grads: Sequence[Optional[np.ndarray]],
    slots: Sequence[Sequence[np.ndarray]], coefficients_f32: Optional[Sequence[float]],
    coefficients_f64: Optional[Sequence[float]],
    decay_f32: Optional[Tuple[float, float]] = None, decay_f64: Optional[Tuple[float, float]] = None,
    no_decay: Optional[Tuple[bool, ...]] = None, variant: int = 0, reduction_threads: int = 1,
) -> None: ...
def _isa_from_environment() -> str: ...
def _sgd_multi(
    params: Sequence[np.ndarray], grads: Sequence[Optional[np.ndarray]], momentums: Optional[Sequence[np.ndarray]],
    learning_rate: float, momentum: float, nesterov: bool, weight_decay: Optional[float],
    no_decay: Optional[Tuple[bool, ...]] = None,
) -> None: ...
def _rmsprop_multi(
    params: Sequence[np.ndarray], grads: Sequence[Optional[np.ndarray]], velocities: Sequence[np.ndarray],
    momentums: Optional[Sequence[np.ndarray]], average_gradients: Optional[Sequence[np.ndarray]],
    learning_rate: float, rho: float, epsilon: float, momentum: float, weight_decay: Optional[float],
    no_decay: Optional[Tuple[bool, ...]] = None,
) -> None: ...
def _adam_multi(
    params: Sequence[np.ndarray], grads: Sequence[Optional[np.ndarray]], momentums: Sequence[np.ndarray],
    velocities: Sequence[np.ndarray], velocity_hats: Optional[Sequence[np.ndarray]], step: int,
    learning_rate: float, beta_1: float, beta_2: float, epsilon: float, weight_decay: Optional[float],
    no_decay: Optional[Tuple[bool, ...]] = None,
) -> None: ...
def _adam8bit_multi(
    params: Sequence[np.ndarray], grads: Sequence[Optional[np.ndarray]], momentums: Sequence[np.ndarray],
    velocities: Sequence[np.ndarray], velocity_hats: Optional[Sequence[np.ndarray]],
    momentum_scales: Sequence[np.ndarray], velocity_scales: Sequence[np.ndarray],
    velocity_hat_scales: Optional[Sequence[np.ndarray]], step: int, learning_rate: float,
    beta_1: float, beta_2: float, epsilon: float, weight_decay: Optional[float], block_size: int,
    no_decay: Optional[Tuple[bool, ...]] = None,
) -> None: ...
