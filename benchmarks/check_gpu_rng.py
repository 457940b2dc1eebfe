"""GPU check of the keyed generator's Triton kernels: same bits as the CPU, and speed.

    python3 benchmarks/check_gpu_rng.py        # needs a CUDA device and Triton
"""

from __future__ import annotations

import math
import time

import torch

from initlab.rng import Keyed, gpu


def main() -> None:
    assert torch.cuda.is_available() and gpu.available(), "needs a CUDA device and Triton"
    stream = Keyed(7).child("check")
    k0, k1 = stream._key
    cases = [(0, 1), (0, 5), (3, 10), (1, 4096), (5, 1 << 20), ((1 << 40) + 3, 12345), (2, (1 << 22) + 7)]
    for start, count in cases:
        window = stream.window(start, start + count)
        reference_u = window.uniform_(torch.empty(count), -0.3, 0.7)
        reference_n = window.normal_(torch.empty(count), 0.1, 2.0)
        out = torch.empty(count, device="cuda")
        gpu.uniform_f32_(out, start, k0, k1, -0.3, 0.7 - (-0.3), *_bounds(-0.3, 0.7))
        same_u = torch.equal(out.cpu().view(torch.int32), reference_u.view(torch.int32))
        gpu.normal_f32_(out, start, k0, k1, 0.1, 2.0)
        got = out.cpu()
        same_n = torch.equal(got.view(torch.int32), reference_n.view(torch.int32))
        worst = (got.double() - reference_n.double()).abs().max().item()
        print(f"start {start}, {count} values: uniform same bits {same_u}; normal same bits {same_n} (max diff {worst:.2e})")
    count = 1 << 26
    out = torch.empty(count, device="cuda")

    def timed(function) -> float:
        function()
        torch.cuda.synchronize()
        best = math.inf
        for _ in range(10):
            start = time.perf_counter()
            function()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        return best

    fill = timed(lambda: out.fill_(1.0))
    from torch import nn

    for name, ours, theirs in (
        ("uniform kernel", lambda: gpu.uniform_f32_(out, 0, k0, k1, -1.0, 2.0, -1.0, 1.0), lambda: out.uniform_(-1.0, 1.0)),
        ("normal kernel", lambda: gpu.normal_f32_(out, 0, k0, k1, 0.0, 0.02), lambda: out.normal_(0.0, 0.02)),
        ("Keyed.uniform_", lambda: stream.uniform_(out, -1.0, 1.0), lambda: out.uniform_(-1.0, 1.0)),
        ("Keyed.normal_", lambda: stream.normal_(out, 0.0, 0.02), lambda: out.normal_(0.0, 0.02)),
        ("Keyed.truncated_normal_", lambda: stream.truncated_normal_(out, 0.0, 0.02, -2.0, 2.0),
         lambda: nn.init.trunc_normal_(out, 0.0, 0.02, -0.04, 0.04)),
    ):
        mine, reference = timed(ours), timed(theirs)
        print(f"{name}: Triton {mine * 1e3:.3f} ms ({count / mine / 1e9:.1f} G/s), torch {reference * 1e3:.3f} ms, "
              f"fill {fill * 1e3:.3f} ms: {fill / mine:.0%} of the bandwidth bound, {reference / mine:.2f}x torch")


def _bounds(low: float, high: float) -> tuple[float, float]:
    from initlab.rng.keyed import _clamp_bounds

    return _clamp_bounds(low, high, torch.float32, open_upper=True)


if __name__ == "__main__":
    main()
