"""Symmetric units: hidden units whose incoming weights (and gradients) coincide.

Two units that start with the same incoming weights and bias, read the same
inputs and feed the same kind of outgoing connections compute the same value
and receive the same gradient, so no gradient step can make them differ: the
layer behaves like a single unit (Goodfellow, Bengio & Courville 2016, sec.
8.4, "breaking symmetry"). Constant and zero initializations produce exactly
this.

Unit ``i`` of a layer is described by its incoming-weight row (row ``i`` of a
Linear or Conv weight, flattened, with its bias appended). Two units are
near-identical when ``|w_i - w_j| <= tol * s``, where ``s`` is the layer's
root-mean-square row norm; when gradients are given, their gradient rows must satisfy
the same test (with the gradient's scale). Groups are the connected components
of that relation. Only units of the same convolution group are compared,
since units of different groups read different inputs.

The search projects the rows on 8 random directions, sorts the units by the
first projection and compares each with its next ``window`` neighbours in
that order; pairs whose projections all agree within the tolerance are then
checked exactly. Near-identical rows have near-equal projections, so this
finds every group in O(units * (fan_in + log units)) instead of the
O(units^2 * fan_in) of all pairs.
"""

from __future__ import annotations

import torch

from initlab.rng.checks import check_number

__all__ = ["unit_rows", "symmetric_groups"]

_PROJECTIONS = 8


def unit_rows(
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    layout: str = "linear",
    groups: int = 1,
) -> torch.Tensor | None:
    """(units, incoming) matrix of a weight in ``layout``, bias as a last column; None if units are not rows."""
    if weight.dim() < 2:
        return None
    if layout in ("linear", "conv"):
        rows = weight.detach().reshape(weight.shape[0], -1)
    elif layout == "conv_transpose" and groups == 1:
        rows = weight.detach().transpose(0, 1).reshape(weight.shape[1], -1)
    else:
        return None
    if bias is not None and bias.dim() == 1 and bias.shape[0] == rows.shape[0]:
        rows = torch.cat([rows, bias.detach().reshape(-1, 1).to(rows.dtype)], dim=1)
    return rows


def _floating(rows: torch.Tensor) -> torch.Tensor:
    return rows if rows.dtype in (torch.float32, torch.float64) else rows.float()


def _row_scale(rows: torch.Tensor) -> torch.Tensor:
    """Root-mean-square row norm, in float64."""
    flat = rows.reshape(-1).to(torch.float64)
    return (torch.dot(flat, flat) / rows.shape[0]).sqrt()


def _distance(rows: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return (rows[first].to(torch.float64) - rows[second].to(torch.float64)).norm(dim=1)


def _candidate_pairs(
    values: torch.Tensor, limit: torch.Tensor, groups: int, window: int, seed: int
) -> tuple[list[int], list[int]]:
    """Unit pairs (firsts[i], seconds[i]) whose random projections are all within ``limit`` (plus rounding).

    |p_i - p_j| <= |w_i - w_j| along every unit direction, so near rows have
    close projections on all of them; sorted by the first projection, near
    rows sit within ``window`` places of each other (units of different
    groups are sorted apart and never paired).
    """
    units = values.shape[0]
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(values.shape[1], _PROJECTIONS, dtype=torch.float64, generator=generator)
    directions = (directions / directions.norm(dim=0)).to(device=values.device, dtype=values.dtype)
    projections = (values @ directions).to(torch.float64)
    # the slack covers rounding of the projections themselves
    slack = limit + 1e-6 * projections.abs().amax()
    per_group = units // groups if groups > 0 and units % groups == 0 else units
    group_index = torch.arange(units, device=values.device) // per_group
    span = projections[:, 0].abs().amax() + 1.0
    order = torch.argsort(projections[:, 0] + group_index.to(torch.float64) * 4.0 * span)
    sorted_projections = projections[order]
    sorted_group = group_index[order]
    offsets = range(1, min(window, units - 1) + 1)
    candidates = [
        ((sorted_projections[k:] - sorted_projections[:-k]).abs() <= slack).all(dim=1)
        & (sorted_group[k:] == sorted_group[:-k])
        for k in offsets
    ]
    # one transfer of the candidate masks; exact distances only for the (few) candidates
    masks = torch.cat(candidates).cpu()
    order_host = order.cpu()
    firsts: list[int] = []
    seconds: list[int] = []
    start = 0
    for k, mask in zip(offsets, candidates):
        positions = torch.nonzero(masks[start : start + mask.numel()]).flatten()
        start += mask.numel()
        firsts += order_host[positions].tolist()
        seconds += order_host[positions + k].tolist()
    return firsts, seconds


def _connected_groups(units: int, pairs: list[tuple[int, int]]) -> list[tuple[int, ...]]:
    """The groups of size >= 2 that ``pairs`` join (union-find), each sorted, ordered by first unit."""
    parent = list(range(units))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)
    members: dict[int, list[int]] = {}
    for unit in range(units):
        members.setdefault(find(unit), []).append(unit)
    found = [tuple(sorted(group)) for group in members.values() if len(group) >= 2]
    return sorted(found, key=lambda group: group[0])


def symmetric_groups(
    weight_rows: torch.Tensor,
    grad_rows: torch.Tensor | None = None,
    *,
    tol: float = 1e-4,
    groups: int = 1,
    window: int = 4,
    seed: int = 0,
) -> list[tuple[int, ...]]:
    """Groups (sorted tuples of unit indices, size >= 2) of near-identical units.

    ``weight_rows`` is (units, incoming) from :func:`unit_rows`; ``grad_rows``
    the matching gradient rows or None. ``groups`` is the convolution's group
    count (units of different groups are never merged).
    """
    if weight_rows.dim() != 2:
        raise ValueError(
            f"weight_rows must be 2-D (units, incoming), got shape {tuple(weight_rows.shape)}"
        )
    if grad_rows is not None and grad_rows.shape[0] != weight_rows.shape[0]:
        raise ValueError(
            f"grad_rows has {grad_rows.shape[0]} units but weight_rows has {weight_rows.shape[0]}"
        )
    check_number("tol", tol, minimum=0)
    units = weight_rows.shape[0]
    if units < 2:
        return []
    values = torch.nan_to_num(_floating(weight_rows.detach()))
    limit = tol * _row_scale(values)
    firsts, seconds = _candidate_pairs(values, limit, groups, window, seed)
    if not firsts:
        return []
    first_index = torch.tensor(firsts, device=values.device)
    second_index = torch.tensor(seconds, device=values.device)
    near = _distance(values, first_index, second_index) <= limit
    if grad_rows is not None:
        gradients = torch.nan_to_num(_floating(grad_rows.detach()))
        near &= _distance(gradients, first_index, second_index) <= tol * _row_scale(gradients)
    pairs = [(a, b) for a, b, is_near in zip(firsts, seconds, near.cpu().tolist()) if is_near]
    return _connected_groups(units, pairs)
