"""Mean-field signal propagation through deep random networks.

A fully connected layer with weights W_ij ~ N(0, sigma_w2 / fan_in), biases
b_i ~ N(0, sigma_b2) and activation phi maps the per-unit pre-activation
variance q of one layer to the next (Poole et al. 2016, "Exponential
expressivity in deep neural networks through transient chaos")::

    q_{l+1} = sigma_w2 * E[phi(sqrt(q_l) z)^2] + sigma_b2,        z ~ N(0, 1)

and the correlation c of two inputs' pre-activations by the correlation map::

    c_{l+1} = (sigma_w2 * E[phi(u1) phi(u2)] + sigma_b2) / q*,
    u1 = sqrt(q*) z1,   u2 = sqrt(q*) (c z1 + sqrt(1 - c^2) z2).

At the fixed point q* the slope of the correlation map at c = 1 is

    chi1 = sigma_w2 * E[phi'(sqrt(q*) z)^2];

chi1 < 1 is the ordered phase (inputs become alike, gradients vanish),
chi1 > 1 the chaotic phase (nearby inputs decorrelate, gradients explode),
chi1 = 1 the edge of chaos. Signals reach depths of order the depth scales
(Schoenholz et al. 2017, "Deep information propagation")::

    xi_q = -1 / log(sigma_w2 * E[phi'(u)^2 + phi(u) phi''(u)])
    xi_c = -1 / log(sigma_w2 * E[phi'(u1) phi'(u2)] at c*)
    xi_grad = -1 / log(chi1)      (gradient norms scale as chi1 per layer)

Expectations use the Gauss-Legendre panel rule of ``initlab.schemes.gains``
(panel edges at integers, so kinks at 0 integrate exactly); phi' comes from
autograd unless a derivative is given. Every function is vectorised over q.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab.rng.checks import check_int, check_number
from initlab.schemes.gains import gaussian_expectation, resolve_activation

__all__ = [
    "MeanField",
    "PhaseDiagram",
    "critical_line",
    "critical_sigma_w2",
    "phase_diagram",
    "predict_layer_stats",
    "Q_MIN",
    "Q_MAX",
]

ActivationLike = str | nn.Module | Callable[[torch.Tensor], torch.Tensor] | None
Function = Callable[[torch.Tensor], torch.Tensor]

# the variance range searched for fixed points (q* below Q_MIN counts as 0)
Q_MIN = 1e-30
Q_MAX = 1e12
_GRID = torch.logspace(math.log10(Q_MIN), math.log10(Q_MAX), 4 * 42 + 1, dtype=torch.float64)
_RTOL = 1e-14
_MAX_SOLVER_STEPS = 200


# -- activations ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Activation:
    label: str
    function: Function
    derivative: Function


def _autograd_derivative(function: Function, label: str) -> Function:
    def derivative(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            point = x.detach().clone().requires_grad_(True)
            value = function(point)
            if not isinstance(value, torch.Tensor) or not value.requires_grad:
                raise ValueError(
                    f"cannot differentiate activation {label!r} by autograd "
                    "(its output does not depend on its input through torch operations); "
                    "pass derivative=<callable phi'(x)>"
                )
            (grad,) = torch.autograd.grad(value.sum(), point, allow_unused=True)
        if grad is None:
            return torch.zeros_like(x)
        return grad.detach()

    return derivative


def _resolve(activation: ActivationLike, derivative: Function | None) -> _Activation:
    name, _, function = resolve_activation(activation)
    if name is None and isinstance(activation, nn.Module):
        # resolve_activation runs unknown modules under no_grad; autograd needs them live
        function = activation
    if name is not None:
        label = name
    elif isinstance(activation, nn.Module):
        label = type(activation).__name__
    else:
        label = getattr(activation, "__name__", type(activation).__name__)
    if derivative is not None and not callable(derivative):
        raise TypeError(f"derivative must be a callable phi'(x) or None, got {derivative!r}")
    return _Activation(label, function, derivative or _autograd_derivative(function, label))


def _to_tensor(value: Any, argument: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(np.asarray(value, dtype=np.float64) if not isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{argument} must be a number or an array of numbers, got {value!r}") from error
    return tensor.to(torch.float64)


def _like_input(result: torch.Tensor, original: Any) -> Any:
    if isinstance(original, torch.Tensor):
        return result
    if isinstance(original, np.ndarray | list | tuple):
        return result.numpy()
    return float(result)


# -- expectations (all vectorised over q) -----------------------------------------------
def _second_moment(act: _Activation, q: torch.Tensor) -> torch.Tensor:
    """E[phi(sqrt(q) z)^2]."""
    return gaussian_expectation(lambda x: act.function(x) ** 2, q.clamp_min(0.0).sqrt())


def _derivative_moment(act: _Activation, q: torch.Tensor) -> torch.Tensor:
    """E[phi'(sqrt(q) z)^2]."""
    return gaussian_expectation(lambda x: act.derivative(x) ** 2, q.clamp_min(0.0).sqrt())


def _q_map_slope(act: _Activation, sigma_w2: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """d q_map / dq = sigma_w2 * E[z phi(sqrt(q) z) phi'(sqrt(q) z)] / sqrt(q) (Stein's lemma).

    Equal to sigma_w2 * E[phi'^2 + phi phi''] without a second derivative; at
    q = 0 the limit sigma_w2 * phi'(0)^2 (plus the phi(0) phi''(0) term, which
    vanishes for phi(0) = 0) is used.
    """
    root = q.clamp_min(0.0).sqrt()
    safe_root = torch.where(root > 0, root, torch.ones_like(root))
    stein = gaussian_expectation(
        lambda x: (x / safe_root.unsqueeze(-1)) * act.function(x) * act.derivative(x), root
    )
    at_zero = act.derivative(torch.zeros(1, dtype=torch.float64))[0] ** 2
    return sigma_w2 * torch.where(root > 0, stein / safe_root, at_zero.expand_as(root))


_PAIR_EDGES = np.arange(-9.0, 9.5, 1.0)
_PAIR_ORDER = 16


def _normal_pdf(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@functools.lru_cache(maxsize=1)
def _pair_nodes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Panel rule on [-9, 9] (width 1, 16 nodes per panel): nodes, weights, panel of each node, GL rule."""
    nodes, weights = np.polynomial.legendre.leggauss(_PAIR_ORDER)
    left, right = _PAIR_EDGES[:-1, None], _PAIR_EDGES[1:, None]
    z = (0.5 * (right - left) * nodes + 0.5 * (right + left)).reshape(-1)
    w = (0.5 * (right - left) * weights).reshape(-1) * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    panel = np.repeat(np.arange(len(_PAIR_EDGES) - 1), _PAIR_ORDER)
    return (
        torch.from_numpy(z),
        torch.from_numpy(w),
        torch.from_numpy(panel),
        torch.from_numpy(np.stack([nodes, weights])),
    )


def _inner_rule(kink: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row nodes and weights for E[h(z2)], z2 ~ N(0, 1), with a panel edge at ``kink[i]``.

    The panel holding the kink is split in two, so an activation with a kink
    at u2 = 0 is integrated as accurately as a smooth one.
    """
    z, w, panel, rule = _pair_nodes()
    gl_nodes, gl_weights = rule[0], rule[1]
    rows = kink.numel()
    edges = torch.from_numpy(_PAIR_EDGES)
    inside = torch.isfinite(kink) & (kink > edges[0]) & (kink < edges[-1])
    safe_kink = torch.where(inside, kink, torch.zeros_like(kink))
    split = torch.clamp(torch.floor(safe_kink - edges[0]).long(), 0, edges.numel() - 2)
    split = torch.where(inside, split, torch.full_like(split, -1))
    weights = w.expand(rows, -1).clone()
    weights[panel[None, :] == split[:, None]] = 0.0
    left = edges[split.clamp(min=0)]
    right = edges[(split + 1).clamp(min=0)]
    pieces_z, pieces_w = [z.expand(rows, -1)], [weights]
    for low, high in ((left, safe_kink), (safe_kink, right)):
        half = 0.5 * (high - low)
        nodes = half[:, None] * gl_nodes[None, :] + (0.5 * (high + low))[:, None]
        node_weights = half[:, None] * gl_weights[None, :] * _normal_pdf(nodes)
        pieces_z.append(nodes)
        pieces_w.append(torch.where(inside[:, None], node_weights, torch.zeros_like(node_weights)))
    return torch.cat(pieces_z, dim=1), torch.cat(pieces_w, dim=1)


def _pair_expectation(f: Function, g: Function, q: float, c: float) -> float:
    """E[f(u1) g(u2)] with u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2).

    Nested panel rules; the inner one puts a panel edge where u2 = 0, the
    outer one has an edge at z1 = 0, so kinks at 0 (ReLU family) cost no accuracy.
    """
    z, w, _, _ = _pair_nodes()
    root = math.sqrt(max(q, 0.0))
    c = min(max(c, -1.0), 1.0)
    s = math.sqrt(max(1.0 - c * c, 0.0))
    u1 = root * z
    if s == 0.0:
        return float((w * f(u1) * g(c * u1)).sum())
    inner_z, inner_w = _inner_rule(-c * z / s)
    u2 = root * (c * z[:, None] + s * inner_z)
    inner = (g(u2) * inner_w).sum(-1)
    return float((w * f(u1) * inner).sum())


# -- root finding ---------------------------------------------------------------------
def _illinois(
    function: Callable[[torch.Tensor], torch.Tensor],
    low: torch.Tensor,
    high: torch.Tensor,
    f_low: torch.Tensor,
    f_high: torch.Tensor,
) -> torch.Tensor:
    """Roots of ``function`` in the brackets [low, high] (elementwise sign change), vectorised.

    The Illinois variant of regula falsi, with bisection whenever the secant
    step leaves the bracket; stops at relative width 1e-14.
    """
    a, b, fa, fb = low.clone(), high.clone(), f_low.clone(), f_high.clone()
    for _ in range(_MAX_SOLVER_STEPS):
        width = (b - a).abs()
        done = (width <= _RTOL * torch.maximum(a.abs(), b.abs())) | (fb == 0)
        if bool(done.all()):
            break
        denominator = fb - fa
        secant = (a * fb - b * fa) / torch.where(denominator == 0, torch.ones_like(denominator), denominator)
        low_end, high_end = torch.minimum(a, b), torch.maximum(a, b)
        inside = (denominator != 0) & (secant > low_end) & (secant < high_end) & torch.isfinite(secant)
        # geometric midpoint for brackets spanning decades, arithmetic otherwise
        geometric = (low_end > 0) & (high_end > 16 * low_end)
        midpoint = torch.where(geometric, (low_end.clamp_min(1e-300) * high_end).sqrt(), 0.5 * (a + b))
        c = torch.where(inside & ~geometric, secant, midpoint)
        c = torch.where(done, b, c)
        fc = function(c)
        crossed = fc * fb < 0
        a_next = torch.where(crossed, b, a)
        fa_next = torch.where(crossed, fb, 0.5 * fa)
        a = torch.where(done, a, a_next)
        fa = torch.where(done, fa, fa_next)
        b = torch.where(done, b, c)
        fb = torch.where(done, fb, fc)
    return b


def _solve_q_star(
    act: _Activation, sigma_w2: torch.Tensor, sigma_b2: torch.Tensor, q0: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed points q* reached by iterating the variance map from q0, and a mask of failures.

    q_map is evaluated on a log grid over [Q_MIN, Q_MAX] (with q0 inserted)
    to bracket the first crossing of q_map(q) = q in the direction the
    iteration moves, then refined by :func:`_illinois`. When the map falls
    below the diagonal all the way down to Q_MIN, q* = 0; when it stays above
    it up to Q_MAX there is no fixed point in range (mask True, q* NaN).
    """
    sigma_w2, sigma_b2 = torch.broadcast_tensors(sigma_w2, sigma_b2)
    shape = sigma_w2.shape
    sw2, sb2 = sigma_w2.reshape(-1), sigma_b2.reshape(-1)
    grid = torch.sort(torch.cat([_GRID, torch.tensor([q0], dtype=torch.float64)])).values
    start = int(torch.searchsorted(grid, torch.tensor(q0, dtype=torch.float64)))
    moments = _second_moment(act, grid)
    excess = sw2[:, None] * moments[None, :] + sb2[:, None] - grid[None, :]
    excess = torch.where(excess.abs() <= 1e-15 * grid[None, :], torch.zeros_like(excess), excess)
    excess_start = excess[:, start]
    count = grid.numel()
    index = torch.arange(count)

    # moving up: first grid point above q0 where the map falls to or below the diagonal
    up_hit = (excess <= 0) & (index[None, :] > start)
    up_index = torch.where(up_hit, index[None, :], torch.full_like(up_hit, count, dtype=torch.long)).min(-1).values
    # moving down: last grid point below q0 where the map is at or above the diagonal
    down_hit = (excess >= 0) & (index[None, :] < start)
    down_index = torch.where(down_hit, index[None, :], torch.full_like(down_hit, -1, dtype=torch.long)).max(-1).values

    going_up = excess_start > 0
    going_down = excess_start < 0
    low_index = torch.where(going_up, up_index - 1, down_index).clamp(0, count - 1)
    high_index = torch.where(going_up, up_index, down_index + 1).clamp(0, count - 1)
    low, high = grid[low_index], grid[high_index]
    f_low = excess.gather(1, low_index[:, None])[:, 0]
    f_high = excess.gather(1, high_index[:, None])[:, 0]

    diverged = going_up & (up_index >= count)
    vanished = going_down & (down_index < 0)
    exact_low = f_low == 0
    exact_high = f_high == 0
    solvable = (going_up | going_down) & ~diverged & ~vanished & ~exact_low & ~exact_high

    def residual(q: torch.Tensor) -> torch.Tensor:
        return sw2 * _second_moment(act, q) + sb2 - q

    safe_low = torch.where(solvable, low, torch.ones_like(low))
    safe_high = torch.where(solvable, high, torch.full_like(high, 2.0))
    safe_f_low = torch.where(solvable, f_low, torch.ones_like(f_low))
    safe_f_high = torch.where(solvable, f_high, -torch.ones_like(f_high))
    root = _illinois(residual, safe_low, safe_high, safe_f_low, safe_f_high)

    q_star = torch.full_like(sw2, math.nan)
    q_star = torch.where(solvable, root, q_star)
    q_star = torch.where(~going_up & ~going_down, torch.full_like(sw2, q0), q_star)
    q_star = torch.where(exact_low & ~diverged & ~vanished & (going_up | going_down), low, q_star)
    q_star = torch.where(exact_high & ~exact_low & ~diverged & ~vanished & (going_up | going_down), high, q_star)
    q_star = torch.where(vanished, torch.zeros_like(sw2), q_star)
    return q_star.reshape(shape), diverged.reshape(shape)


# -- the mean-field object ----------------------------------------------------------------
class MeanField:
    """Mean-field signal propagation for one activation and (sigma_w2, sigma_b2).

    ``activation`` is a name (``"tanh"``), an ``nn.Module`` or an elementwise
    callable; ``derivative`` optionally gives phi' (autograd otherwise).
    ``q0`` is the input variance the fixed point is approached from (1.0).

    >>> field = MeanField("tanh", sigma_w2=1.5, sigma_b2=0.05)
    >>> round(field.q_star, 6), field.phase
    (0.418037, 'ordered')
    """

    def __init__(
        self,
        activation: ActivationLike = "tanh",
        sigma_w2: float = 1.0,
        sigma_b2: float = 0.0,
        *,
        derivative: Function | None = None,
        q0: float = 1.0,
    ) -> None:
        self.sigma_w2 = check_number("sigma_w2", sigma_w2, minimum=0.0)
        self.sigma_b2 = check_number("sigma_b2", sigma_b2, minimum=0.0)
        self.q0 = check_number("q0", q0, minimum=0.0, strict=True)
        self._activation = _resolve(activation, derivative)
        self.activation = self._activation.label

    def __repr__(self) -> str:
        return f"MeanField({self.activation!r}, sigma_w2={self.sigma_w2!r}, sigma_b2={self.sigma_b2!r})"

    # maps
    def q_map(self, q: Any) -> Any:
        """sigma_w2 * E[phi(sqrt(q) z)^2] + sigma_b2, for a float, array or tensor of q >= 0."""
        values = _to_tensor(q, "q")
        if bool((values < 0).any()):
            raise ValueError(f"q must be >= 0 (a variance), got {q!r}")
        result = self.sigma_w2 * _second_moment(self._activation, values) + self.sigma_b2
        return _like_input(result, q)

    def c_map(self, c: Any) -> Any:
        """The correlation map at q*, for a float, array or tensor of c in [-1, 1]."""
        values = _to_tensor(c, "c")
        if bool(((values < -1) | (values > 1)).any()):
            raise ValueError(f"c must lie in [-1, 1] (a correlation), got {c!r}")
        q_star = self.q_star
        if q_star == 0.0:
            return _like_input(torch.ones_like(values), c)
        flat = values.reshape(-1)
        fn = self._activation.function
        out = torch.tensor(
            [(self.sigma_w2 * _pair_expectation(fn, fn, q_star, float(v)) + self.sigma_b2) / q_star for v in flat],
            dtype=torch.float64,
        ).reshape(values.shape)
        return _like_input(out, c)

    # fixed points and slopes
    @functools.cached_property
    def q_star(self) -> float:
        """Fixed point of the variance map reached from q0; 0 when the signal dies out.

        Raises ValueError when the variance grows past Q_MAX (no fixed point in range).
        """
        q_star, diverged = _solve_q_star(
            self._activation,
            torch.tensor(self.sigma_w2, dtype=torch.float64),
            torch.tensor(self.sigma_b2, dtype=torch.float64),
            self.q0,
        )
        if bool(diverged):
            raise ValueError(
                f"no fixed point of the variance map for activation {self.activation!r} with "
                f"sigma_w2={self.sigma_w2}, sigma_b2={self.sigma_b2}: q_map(q) > q on the whole range "
                f"searched [{self.q0:g}, {Q_MAX:g}] (the pre-activation variance grows without bound)"
            )
        return float(q_star)

    @functools.cached_property
    def chi1(self) -> float:
        """sigma_w2 * E[phi'(sqrt(q*) z)^2]: slope of the correlation map at c = 1."""
        q = torch.tensor(self.q_star, dtype=torch.float64)
        return float(self.sigma_w2 * _derivative_moment(self._activation, q))

    @property
    def phase(self) -> str:
        """'ordered' (chi1 < 1), 'chaotic' (chi1 > 1) or 'critical' (|chi1 - 1| <= 1e-9)."""
        if abs(self.chi1 - 1.0) <= 1e-9:
            return "critical"
        return "ordered" if self.chi1 < 1.0 else "chaotic"

    @functools.cached_property
    def q_slope(self) -> float:
        """d q_map / dq at q* (= chi1 + sigma_w2 * E[phi(u) phi''(u)])."""
        q = torch.tensor(self.q_star, dtype=torch.float64)
        return float(_q_map_slope(self._activation, torch.tensor(self.sigma_w2, dtype=torch.float64), q))

    @functools.cached_property
    def c_star(self) -> float:
        """Stable fixed point of the correlation map: 1 in the ordered phase, < 1 in the chaotic one."""
        if self.chi1 <= 1.0 or self.q_star == 0.0:
            return 1.0
        fn = self._activation.function
        q_star = self.q_star

        def residual(c: torch.Tensor) -> torch.Tensor:
            return torch.tensor(
                [(self.sigma_w2 * _pair_expectation(fn, fn, q_star, float(v)) + self.sigma_b2) / q_star - float(v) for v in c],
                dtype=torch.float64,
            )

        top = 1.0 - 1e-6
        low = torch.tensor([0.0], dtype=torch.float64)
        high = torch.tensor([top], dtype=torch.float64)
        f_low, f_high = residual(low), residual(high)
        if float(f_low) <= 0.0:
            return 0.0 if float(f_low) == 0.0 else float(self._search_negative_c(residual))
        if float(f_high) >= 0.0:
            return 1.0
        return float(_illinois(residual, low, high, f_low, f_high))

    @staticmethod
    def _search_negative_c(residual: Callable[[torch.Tensor], torch.Tensor]) -> float:
        low = torch.tensor([-1.0], dtype=torch.float64)
        high = torch.tensor([0.0], dtype=torch.float64)
        f_low, f_high = residual(low), residual(high)
        if float(f_low) * float(f_high) > 0:
            return 0.0
        return float(_illinois(residual, low, high, f_low, f_high))

    @functools.cached_property
    def chi_c(self) -> float:
        """sigma_w2 * E[phi'(u1) phi'(u2)] at c*: the correlation map's slope at its stable point."""
        if self.c_star >= 1.0:
            return self.chi1
        d = self._activation.derivative
        return self.sigma_w2 * _pair_expectation(d, d, self.q_star, self.c_star)

    @property
    def depth_scale_q(self) -> float:
        """xi_q = -1 / log(d q_map / dq at q*): layers over which the variance settles to q*."""
        return _depth_scale(abs(self.q_slope))

    @property
    def depth_scale_c(self) -> float:
        """xi_c = -1 / log(chi_c): layers over which two inputs' correlation settles (inf at chi1 = 1)."""
        return _depth_scale(abs(self.chi_c))

    @property
    def gradient_scale(self) -> float:
        """xi_grad = -1 / log(chi1), signed.

        Gradient norms change by a factor chi1 per layer; a positive value is
        the depth over which they shrink by e (ordered), a negative one the
        depth over which they grow by e (chaotic); inf at criticality.
        """
        if self.chi1 <= 0.0:
            return 0.0
        log_chi = math.log(self.chi1)
        return math.inf if abs(log_chi) < 1e-12 else -1.0 / log_chi

    def predict(self, depth: int, input_q: float = 1.0) -> list[float]:
        """Predicted pre-activation std of layers 1..depth (see :func:`predict_layer_stats`)."""
        return _predict(self._activation, depth, input_q, self.sigma_w2, self.sigma_b2)

    def summary(self) -> dict[str, Any]:
        """q*, chi1, phase, c*, depth scales and gradient scale as a dict."""
        return {
            "activation": self.activation,
            "sigma_w2": self.sigma_w2,
            "sigma_b2": self.sigma_b2,
            "q_star": self.q_star,
            "chi1": self.chi1,
            "phase": self.phase,
            "c_star": self.c_star,
            "depth_scale_q": self.depth_scale_q,
            "depth_scale_c": self.depth_scale_c,
            "gradient_scale": self.gradient_scale,
        }


def _depth_scale(slope: float) -> float:
    if slope <= 0.0:
        return 0.0
    log_slope = math.log(slope)
    return math.inf if abs(log_slope) < 1e-12 else -1.0 / log_slope


# -- per-layer prediction ----------------------------------------------------------------
def _predict(act: _Activation, depth: int, input_q: float, sigma_w2: float, sigma_b2: float) -> list[float]:
    check_int("depth", depth, minimum=1)
    q = sigma_w2 * check_number("input_q", input_q, minimum=0.0) + sigma_b2
    stds = [math.sqrt(q)]
    for _ in range(int(depth) - 1):
        q = float(sigma_w2 * _second_moment(act, torch.tensor(q, dtype=torch.float64)) + sigma_b2)
        stds.append(math.sqrt(q) if math.isfinite(q) else math.inf)
    return stds


def predict_layer_stats(
    activation: ActivationLike,
    depth: int,
    input_q: float = 1.0,
    sigma_w2: float = 1.0,
    sigma_b2: float = 0.0,
    *,
    derivative: Function | None = None,
) -> list[float]:
    """Predicted std of the pre-activations of layers 1..depth of a wide random MLP.

    Layer 1 sees the raw input: q_1 = sigma_w2 * input_q + sigma_b2, where
    ``input_q`` is the mean square of the input coordinates; then
    q_{l+1} = sigma_w2 * E[phi(sqrt(q_l) z)^2] + sigma_b2. Returns sqrt(q_l).
    Weights are N(0, sigma_w2 / fan_in), biases N(0, sigma_b2) (He-normal for
    ReLU is sigma_w2 = 2, sigma_b2 = 0).
    """
    act = _resolve(activation, derivative)
    return _predict(
        act, depth, input_q, check_number("sigma_w2", sigma_w2, minimum=0.0), check_number("sigma_b2", sigma_b2, minimum=0.0)
    )


# -- critical line -------------------------------------------------------------------------
def critical_line(
    activation: ActivationLike,
    sigma_b2_values: Sequence[float] | np.ndarray | torch.Tensor | float,
    *,
    derivative: Function | None = None,
) -> np.ndarray:
    """sigma_w2 on the edge of chaos (chi1 = 1) for each sigma_b2, as a float64 array.

    On the critical line, chi1 = 1 and q* = q_map(q*) give, for a given q,
    sigma_w2 = 1 / E[phi'(sqrt(q) z)^2] and
    sigma_b2 = q - E[phi(sqrt(q) z)^2] / E[phi'(sqrt(q) z)^2]; the second is
    solved for q (vectorised over all sigma_b2 at once), the first gives
    sigma_w2. Entries with no finite critical point (e.g. ReLU with
    sigma_b2 > 0, whose variance grows without bound at sigma_w2 = 2) are NaN
    and a warning names them. tanh: sigma_w2 = 1 at sigma_b2 = 0; ReLU: 2 at 0.
    """
    act = _resolve(activation, derivative)
    values = np.atleast_1d(np.asarray(sigma_b2_values, dtype=np.float64))
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"sigma_b2_values must be finite numbers >= 0, got {sigma_b2_values!r}")
    sigma_w2, _ = _critical(act, torch.from_numpy(values))
    result = sigma_w2.numpy()
    missing = values[~np.isfinite(result)]
    if missing.size:
        warnings.warn(
            f"critical_line: activation {act.label!r} has no critical point with a finite fixed point "
            f"q* in [{Q_MIN:g}, {Q_MAX:g}] for sigma_b2 = {', '.join(f'{v:g}' for v in missing[:8])}"
            f"{' ...' if missing.size > 8 else ''}; those entries are NaN",
            stacklevel=2,
        )
    return result


def critical_sigma_w2(activation: ActivationLike, sigma_b2: float = 0.0, *, derivative: Function | None = None) -> float:
    """The single sigma_w2 with chi1 = 1 at ``sigma_b2``; ValueError when there is none."""
    act = _resolve(activation, derivative)
    value = check_number("sigma_b2", sigma_b2, minimum=0.0)
    sigma_w2, _ = _critical(act, torch.tensor([value], dtype=torch.float64))
    result = float(sigma_w2[0])
    if not math.isfinite(result):
        raise ValueError(
            f"activation {act.label!r} has no edge of chaos at sigma_b2={value:g}: no q in the range "
            f"searched [{Q_MIN:g}, {Q_MAX:g}] has chi1 = 1 at a fixed point of the variance map"
        )
    return result


def _critical(act: _Activation, sigma_b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critical sigma_w2, q* on the line) for a vector of sigma_b2; NaN where none exists."""
    grid = _GRID
    ratio_grid = _second_moment(act, grid) / _derivative_moment(act, grid)
    offset = grid - ratio_grid  # sigma_b2 on the line as a function of q
    excess = offset[None, :] - sigma_b2[:, None]
    count = grid.numel()
    index = torch.arange(count)

    at_zero = excess[:, 0] >= -1e-10 * grid[0]
    hit = (excess >= 0) & (index[None, :] > 0)
    first = torch.where(hit, index[None, :], torch.full_like(hit, count, dtype=torch.long)).min(-1).values
    found = (first < count) & ~at_zero
    high_index = first.clamp(max=count - 1)
    low_index = (high_index - 1).clamp(min=0)

    def residual(q: torch.Tensor) -> torch.Tensor:
        return q - _second_moment(act, q) / _derivative_moment(act, q) - sigma_b2

    low, high = grid[low_index], grid[high_index]
    f_low = excess.gather(1, low_index[:, None])[:, 0]
    f_high = excess.gather(1, high_index[:, None])[:, 0]
    safe = found & (f_low < 0) & (f_high > 0)
    root = _illinois(
        residual,
        torch.where(safe, low, torch.ones_like(low)),
        torch.where(safe, high, torch.full_like(high, 2.0)),
        torch.where(safe, f_low, -torch.ones_like(f_low)),
        torch.where(safe, f_high, torch.ones_like(f_high)),
    )
    q_line = torch.where(found & (f_high == 0), high, root)
    q_line = torch.where(found, q_line, torch.full_like(root, math.nan))
    q_line = torch.where(at_zero, torch.full_like(root, grid[0].item()), q_line)
    usable = torch.isfinite(q_line)
    sigma_w2 = torch.full_like(q_line, math.nan)
    if bool(usable.any()):
        sigma_w2[usable] = 1.0 / _derivative_moment(act, q_line[usable])
    q_out = torch.where(at_zero, torch.zeros_like(q_line), q_line)
    return sigma_w2, q_out


# -- phase diagram ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PhaseDiagram:
    """chi1 and q* on a (sigma_b2, sigma_w2) grid, with the critical line.

    ``chi1`` and ``q_star`` have shape (len(sigma_b2), len(sigma_w2)); NaN
    where the variance grows without bound.
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    chi1: np.ndarray
    q_star: np.ndarray
    critical_sigma_w2: np.ndarray

    def phase(self) -> np.ndarray:
        """-1 ordered, +1 chaotic, 0 critical (|chi1 - 1| < 1e-9), NaN undefined."""
        out = np.sign(self.chi1 - 1.0)
        out[np.abs(self.chi1 - 1.0) < 1e-9] = 0.0
        return out

    def plot(self, path: str | None = None, **options: Any) -> Any:
        """Draw the diagram (see :func:`initlab.theory.plot.plot_phase_diagram`)."""
        from initlab.theory.plot import plot_phase_diagram

        return plot_phase_diagram(self, path, **options)


def phase_diagram(
    activation: ActivationLike = "tanh",
    sigma_w2_values: Sequence[float] | np.ndarray | None = None,
    sigma_b2_values: Sequence[float] | np.ndarray | None = None,
    *,
    derivative: Function | None = None,
    q0: float = 1.0,
) -> PhaseDiagram:
    """chi1 on a grid of (sigma_w2, sigma_b2), vectorised; defaults 0.5..4 x 0..0.5 (60 x 40)."""
    act = _resolve(activation, derivative)
    w_values = np.linspace(0.5, 4.0, 60) if sigma_w2_values is None else np.asarray(sigma_w2_values, dtype=np.float64)
    b_values = np.linspace(0.0, 0.5, 40) if sigma_b2_values is None else np.asarray(sigma_b2_values, dtype=np.float64)
    for argument, array in (("sigma_w2_values", w_values), ("sigma_b2_values", b_values)):
        if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)) or np.any(array < 0):
            raise ValueError(f"{argument} must be a non-empty 1-D sequence of finite numbers >= 0")
    sw2 = torch.from_numpy(w_values)[None, :].expand(b_values.size, -1)
    sb2 = torch.from_numpy(b_values)[:, None].expand(-1, w_values.size)
    q_star, diverged = _solve_q_star(act, sw2, sb2, check_number("q0", q0, minimum=0.0, strict=True))
    chi1 = sw2 * _derivative_moment(act, torch.nan_to_num(q_star, nan=1.0))
    chi1 = torch.where(diverged, torch.full_like(chi1, math.nan), chi1)
    line, _ = _critical(act, torch.from_numpy(b_values))
    return PhaseDiagram(act.label, w_values, b_values, chi1.numpy(), q_star.numpy(), line.numpy())
