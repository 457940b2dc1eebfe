"""Run claims with pinned threads and deterministic kernels; collect verdicts; read and write ``results.json``.

The verdicts must not depend on the machine's load or on how many threads a
BLAS kernel splits a product into, so a run pins torch's intra-op threads
(and NumPy's BLAS threads, through threadpoolctl when it is installed) to
``threads`` (1 by default) and switches on torch's deterministic
algorithms; both are restored afterwards. ``results.json`` records the
torch build's BLAS, the CPU and its vector extension, the thread count and
the load average at the start and end of the run, beside every claim's
pre-registration, measurements and verdict.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initlab.lab.claims.base import (
    ERROR,
    VERDICTS,
    ClaimResult,
    Context,
    Measurement,
    decide,
    get_claim,
    registered_claims,
)
from initlab.lab.environment import environment as machine_environment
from initlab.rng.checks import check_int, check_seed

__all__ = ["ClaimsRun", "run_claims", "run_one", "load_run", "write_run", "select_claims", "RESULTS_FILE", "FIGURE_DIR"]

RESULTS_FILE = "results.json"
FIGURE_DIR = "figures"
FORMAT = "initlab-claims/2"


@dataclass
class ClaimsRun:
    """The results of one ``initlab claims`` run."""

    results: list[ClaimResult]
    quick: bool
    seed: int
    seconds: float
    started: str
    threads: int = 1
    environment: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {verdict: sum(r.verdict == verdict for r in self.results) for verdict in VERDICTS}

    @property
    def errors(self) -> list[ClaimResult]:
        return [result for result in self.results if result.verdict == ERROR]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": "claims",
            "mode": "quick" if self.quick else "full",
            "quick": self.quick,
            "seed": self.seed,
            "threads": self.threads,
            "seconds": round(self.seconds, 2),
            "started": self.started,
            "environment": self.environment,
            "counts": self.counts(),
            "claims": [result.to_dict() for result in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClaimsRun:
        if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
            raise ValueError("a claims results file is a JSON object with a 'claims' list")
        return cls(
            results=[ClaimResult.from_dict(row) for row in data["claims"]],
            quick=bool(data.get("quick", data.get("mode") == "quick")),
            seed=int(data.get("seed", 0)),
            seconds=float(data.get("seconds", 0.0)),
            started=str(data.get("started", "")),
            threads=int(data.get("threads", 1)),
            environment=dict(data.get("environment", {})),
        )

    def table(self) -> str:
        """The claims table as plain text: id, verdict, headline measurement [95 % CI], threshold, title."""
        header = f"{'id':<13} {'verdict':<14} {'measured [95% CI]':<34} {'threshold':<14} claim"
        lines = [header, "-" * len(header)]
        for result in self.results:
            row = result.headline
            measured = row["measured"]["text"] if row and row.get("measured") else "-"
            threshold = row["threshold_text"] if row else "-"
            lines.append(f"{result.id:<13} {result.verdict:<14} {measured[:34]:<34} {threshold[:14]:<14} {result.title}")
            if result.verdict == ERROR:
                lines.append(f"{'':<13} error: {result.error.splitlines()[0] if result.error else ''}")
        counts = self.counts()
        summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
        lines.append("")
        lines.append(f"{len(self.results)} claims: {summary} ({'quick' if self.quick else 'full'} mode, "
                     f"{self.threads} thread{'s' if self.threads != 1 else ''}, {self.seconds:.0f} s)")
        return "\n".join(lines)


def _load_average() -> list[float]:
    with contextlib.suppress(OSError, AttributeError):
        return [round(value, 2) for value in os.getloadavg()]
    return []


def environment(threads: int) -> dict[str, Any]:
    """The machine (:func:`initlab.lab.environment.environment`), then threads, determinism and bootstrap settings."""
    import torch

    from initlab.lab.claims import _stats

    return {
        **machine_environment(),
        "threads": threads,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "bootstrap": {"level": _stats.LEVEL, "resamples": _stats.RESAMPLES, "seed": _stats.BOOTSTRAP_SEED},
    }


@contextlib.contextmanager
def pinned(threads: int) -> Iterator[None]:
    """Torch (and NumPy BLAS) on ``threads`` threads with deterministic algorithms; restored on exit."""
    import torch

    check_int("threads", threads, minimum=1)
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            pass
        else:
            stack.enter_context(threadpool_limits(limits=threads))
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(previous_threads)
            torch.use_deterministic_algorithms(previous_deterministic)


def select_claims(only: Sequence[str] | None = None) -> list[str]:
    """Ids to run: all registered ones, or those named in ``only`` (checked, in registry order)."""
    import initlab.lab.claims  # noqa: F401  (registers every claim module)

    if not only:
        return [c.id for c in registered_claims()]
    wanted = {get_claim(name).id for name in only}
    return [c.id for c in registered_claims() if c.id in wanted]


def run_one(claim_id: str, *, quick: bool, seed: int, figure_dir: Path | None,
            log: Callable[[str], None] | None = None, threads: int = 1) -> ClaimResult:
    """Run one claim on ``threads`` pinned threads and judge its measurements by its pre-registered rules.

    An experiment that raises, or that does not return a measurement for
    every rule, gives the verdict ``error`` with the message.
    """
    with pinned(threads):
        return _run_one(claim_id, quick=quick, seed=seed, figure_dir=figure_dir, log=log)


def _run_one(claim_id: str, *, quick: bool, seed: int, figure_dir: Path | None,
             log: Callable[[str], None] | None) -> ClaimResult:
    entry = get_claim(claim_id)
    context = Context(quick=quick, seed=seed, figure_dir=figure_dir, log=log, claim_id=entry.id)
    started = time.perf_counter()
    cpu_started = time.process_time()
    common: dict[str, Any] = {
        "id": entry.id, "title": entry.title, "statement": entry.statement, "references": list(entry.references),
        "group": entry.group, "hypothesis": entry.hypothesis, "quick": quick, "design": entry.design,
        "amendments": [amendment.to_dict() for amendment in entry.amendments],
    }
    try:
        outcome = entry.run(context)
        keys = {rule.key for rule in entry.rules}
        missing = sorted(keys - set(outcome.values))
        extra = sorted(set(outcome.values) - keys)
        if missing or extra:
            raise ValueError(f"the experiment's measurements do not match its rules: missing {missing}, extra {extra}")
        for key, value in outcome.values.items():
            if not isinstance(value, Measurement):
                raise TypeError(f"measurement {key!r} is a {type(value).__name__}, not a Measurement")
    except Exception as error:  # an experiment that breaks is reported as an error, not fatal to the run
        return ClaimResult(
            **common, verdict=ERROR, measurement="the experiment raised an exception",
            rules=[{**rule.to_dict(), "measured": None, "status": "error"} for rule in entry.rules],
            figures=[], tables={}, notes="", reference="", setting="", seeds=0,
            seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu_started,
            error=f"{type(error).__name__}: {error}\n\n"
                  + "".join(traceback.format_exception(type(error), error, error.__traceback__))[-4000:],
        )
    rows = []
    statuses = []
    for rule in entry.rules:
        measured = outcome.values[rule.key]
        status = rule.status(measured)
        statuses.append((rule.role, status))
        rows.append({**rule.to_dict(), "measured": measured.to_dict(), "status": status})
    return ClaimResult(
        **common, verdict=decide(statuses), measurement=outcome.measurement, rules=rows,
        figures=[name for name in outcome.figures if name], tables=outcome.tables, notes=outcome.notes,
        reference=outcome.reference, setting=outcome.setting, seeds=outcome.seeds,
        seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu_started,
    )


def _run_in_worker(claim_id: str, quick: bool, seed: int, figure_dir: Path | None, threads: int) -> ClaimResult:
    """One claim in a worker process, pinned like the parent run."""
    return run_one(claim_id, quick=quick, seed=seed, figure_dir=figure_dir, threads=threads)


def run_claims(
    only: Sequence[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    threads: int = 1,
    workers: int = 1,
    out_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
    on_result: Callable[[ClaimResult], None] | None = None,
) -> ClaimsRun:
    """Run the selected claims (all by default); with ``out_dir`` write figures and ``results.json``.

    Each claim runs on ``threads`` torch/BLAS threads with deterministic
    algorithms. ``workers`` > 1 runs that many claims at once in spawned
    processes (claims share nothing, so the results do not depend on it);
    each worker ends within half a second of this process being killed
    (:func:`initlab.lab.executors.watch_parent`).
    ``quick`` uses the small sizes (5 seeds per training claim); the full
    run uses 10 seeds and the sizes documented in docs/claims.md.
    """
    check_seed(seed)
    check_int("workers", workers, minimum=1)
    ids = select_claims(only)
    figure_dir = Path(out_dir) / FIGURE_DIR if out_dir is not None else None
    started_wall = time.strftime("%Y-%m-%d %H:%M:%S")
    load_start = _load_average()
    started = time.perf_counter()
    by_id: dict[str, ClaimResult] = {}
    with pinned(threads):
        env = environment(threads)
        if workers == 1 or len(ids) == 1:
            for claim_id in ids:
                if log is not None:
                    log(f"running claim {claim_id}: {get_claim(claim_id).title}")
                by_id[claim_id] = run_one(claim_id, quick=quick, seed=seed, figure_dir=figure_dir, log=log,
                                          threads=threads)
                if on_result is not None:
                    on_result(by_id[claim_id])
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            from initlab.lab.executors import watch_parent

            context = multiprocessing.get_context("spawn")
            # a worker ends within half a second of this process being killed, rather than running on unread
            with ProcessPoolExecutor(max_workers=min(workers, len(ids)), mp_context=context,
                                     initializer=watch_parent, initargs=(os.getpid(),)) as pool:
                futures = {pool.submit(_run_in_worker, claim_id, quick, seed, figure_dir, threads): claim_id
                           for claim_id in ids}
                if log is not None:
                    log(f"running {len(ids)} claims in {min(workers, len(ids))} worker processes")
                for future in as_completed(futures):
                    result = future.result()
                    by_id[futures[future]] = result
                    if log is not None:
                        log(f"finished claim {result.id}: {result.title}")
                    if on_result is not None:
                        on_result(result)
    env["workers"] = workers
    env["load_average_start"] = load_start
    env["load_average_end"] = _load_average()
    run = ClaimsRun(results=[by_id[claim_id] for claim_id in ids], quick=quick, seed=seed,
                    seconds=time.perf_counter() - started, started=started_wall, threads=threads, environment=env)
    if out_dir is not None:
        write_run(run, out_dir)
    return run


def write_run(run: ClaimsRun, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` into ``out_dir`` (created if needed), atomically; returns its path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RESULTS_FILE
    partial = folder / (RESULTS_FILE + ".partial")
    partial.write_text(json.dumps(run.to_dict(), indent=1, default=str) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def load_run(path: str | os.PathLike[str]) -> ClaimsRun:
    """A :class:`ClaimsRun` from a run folder or its ``results.json``."""
    target = Path(path)
    if target.is_dir():
        target = target / RESULTS_FILE
    if not target.is_file():
        raise FileNotFoundError(f"no claims results at {target}")
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{target} is not valid JSON: {error}") from error
    return ClaimsRun.from_dict(data)
