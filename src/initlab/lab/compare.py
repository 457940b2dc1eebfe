"""``initlab compare``: train one architecture under several inits and seeds, then rank the inits.

The sweep is cut into tasks (one per init, its seeds trained together by the
seed-batched trainer); an executor runs the tasks; every finished run is
written at once as its own record (:mod:`initlab.lab.store`); at the end the
records become a tidy table, a leaderboard and two figures, and the manifest
gets the timings.

>>> from initlab.lab.compare import CompareConfig, run_compare
>>> config = CompareConfig(dataset="digits", model="mlp:64-128x3-10:relu",
...                        inits=("he_normal", "zeros"), seeds=(0, 1), epochs=2)
>>> result = run_compare(config, "runs/demo")          # doctest: +SKIP
>>> print(result.leaderboard_markdown)                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from initlab.lab.environment import environment
from initlab.lab.executors import check_executor, execute
from initlab.lab.leaderboard import (
    TIDY_COLUMNS,
    LeaderRow,
    leaderboard,
    leaderboard_dicts,
    leaderboard_markdown,
    tidy_rows,
    write_table,
)
from initlab.lab.store import (
    MANIFEST,
    STATUSES,
    ResultStore,
    check_out_dir,
    check_unlocked,
    sweep_id,
    sweep_lock,
)
from initlab.lab.trainer import TrainConfig
from initlab.rng.checks import check_seed

__all__ = ["CompareConfig", "CompareResult", "run_compare", "run_task", "check_config", "check_inits", "known_inits"]

MANIFEST_KIND = "initlab.compare"
# config fields that do not change what a run computes: they may differ on --resume
_NOT_IDENTITY = ("inits", "seeds", "executor", "workers", "ray_address", "loss_threshold", "seeds_per_task")


@dataclass(frozen=True)
class CompareConfig:
    """Everything a sweep needs; ``identity()`` is the part that must match on ``--resume``."""

    dataset: str = "digits"
    model: str = "mlp:64-128x3-10:relu"
    inits: tuple[str, ...] = ("zeros", "small_random", "glorot_uniform", "he_normal", "orthogonal", "lsuv")
    seeds: tuple[int, ...] = tuple(range(8))
    epochs: int | None = 20
    steps: int | None = None
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float = 0.0
    batch_size: int | None = 64
    log_every: int = 1
    eval_every: int | None = None
    data_seed: int = 0
    dataset_options: dict[str, Any] = field(default_factory=dict)
    init_batch_size: int = 256
    loss_threshold: float = 0.5
    stall_tolerance: float = 0.05
    diverge_loss: float = 1e4
    batched: bool = True
    seeds_per_task: int | None = None
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        for key in _NOT_IDENTITY:
            data.pop(key)
        return data

    def train_options(self) -> dict[str, Any]:
        return dict(
            optimizer=self.optimizer, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
            steps=self.steps, epochs=None if self.steps is not None else self.epochs,
            batch_size=self.batch_size, log_every=self.log_every, eval_every=self.eval_every,
            stall_tolerance=self.stall_tolerance, diverge_loss=self.diverge_loss,
        )


@dataclass
class CompareResult:
    """A finished (or resumed) sweep: its records, leaderboard and the files written."""

    out_dir: Path
    records: list[dict[str, Any]]
    leaderboard: list[LeaderRow]
    leaderboard_markdown: str
    files: dict[str, Path]
    ran: int
    skipped: int
    manifest: dict[str, Any]
    rerun: list[tuple[str, str]] = field(default_factory=list)  # (record file, why it was run again)


# ---------------------------------------------------------------- validation


def known_inits() -> list[str]:
    """Plan names ``initlab.init_model`` accepts: named plans, data-driven stages and every scheme."""
    import initlab.plan as plan_module
    from initlab.schemes import list_schemes

    names: list[str] = list(plan_module.named_plans())
    for entry in [*plan_module.list_stages(), *list_schemes()]:
        name = entry if isinstance(entry, str) else str(getattr(entry, "name", entry))
        if name not in names:
            names.append(name)
    return names


def check_inits(inits: Sequence[str]) -> None:
    """ValueError naming the first init that ``init_model`` would refuse, before any run starts.

    Each init is read in full, as ``init_model`` reads it: its name, every
    option of its schemes (``he_normal(mode=fan_inn)`` is refused), its rules
    and its data-driven stages (:func:`check_config` also runs, once, each
    stage given options, since a stage reads its options only when it runs).
    """
    from initlab.plan import Plan, get_stage

    if isinstance(inits, str) or not all(isinstance(name, str) for name in inits):
        raise TypeError(f"inits must be a sequence of plan strings, got {inits!r}")
    valid = known_inits()
    unknown = [name for name in inits if "=" not in name and ";" not in name
               and name.split("(")[0].strip() not in valid and not name.strip().endswith((".yaml", ".yml", ".toml", ".json"))]
    if unknown:
        raise ValueError(f"unknown init(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    for name in inits:
        try:
            plan = Plan.coerce(name)
            plan.effective_rules()
            for spec in plan.effective_stages():
                get_stage(spec.name)
        except (ValueError, TypeError, FileNotFoundError) as error:
            raise ValueError(f"init {name!r}: {error}") from error


def check_config(config: CompareConfig) -> None:
    """Raise ValueError/FileNotFoundError for anything in ``config`` that cannot run, before any work."""
    from initlab.lab.data import load_dataset
    from initlab.lab.models import build_model

    if not config.inits:
        raise ValueError("inits must name at least one init")
    if len(set(config.inits)) != len(config.inits):
        raise ValueError(f"inits must not repeat a name, got {list(config.inits)}")
    if not config.seeds:
        raise ValueError("seeds must hold at least one seed")
    for seed in config.seeds:
        check_seed(seed, "seeds")
    if len(set(config.seeds)) != len(config.seeds):
        raise ValueError(f"seeds must not repeat, got {list(config.seeds)}")
    check_executor(config.executor, config.workers)
    if config.seeds_per_task is not None and config.seeds_per_task < 1:
        raise ValueError(f"seeds_per_task must be a positive int, got {config.seeds_per_task}")
    if not math.isfinite(config.loss_threshold) or config.loss_threshold <= 0:
        raise ValueError(f"loss_threshold must be a positive number, got {config.loss_threshold}")
    dataset = load_dataset(config.dataset, seed=config.data_seed, **config.dataset_options)
    build_model(config.model, dataset.input_shape, dataset.num_classes)  # raises on a spec that does not fit
    TrainConfig.make(len(dataset.y_train), **config.train_options())
    check_inits(config.inits)
    _try_stage_options(config, dataset)


def _try_stage_options(config: CompareConfig, dataset: Any) -> None:
    """Initialise one model per init whose stages take options: a stage reads its options only when it runs."""
    from initlab.lab.batched import make_model
    from initlab.plan import Plan

    for init in config.inits:
        if not any(spec.options for spec in Plan.coerce(init).effective_stages()):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make_model(config.model, dataset, init, config.seeds[0], init_batch_size=config.init_batch_size)
        except (ValueError, TypeError) as error:
            raise ValueError(f"init {init!r}: {error}") from error


# ---------------------------------------------------------------- one task (runs in a worker)

_DATASETS: dict[str, Any] = {}


def _dataset(config: dict[str, Any]) -> Any:
    from initlab.lab.data import load_dataset

    key = repr((config["dataset"], config["data_seed"], sorted(config["dataset_options"].items())))
    if key not in _DATASETS:
        _DATASETS.clear()
        _DATASETS[key] = load_dataset(config["dataset"], seed=config["data_seed"], **config["dataset_options"])
    return _DATASETS[key]


def _record(result: Any, init: str, seed: int, sweep: str) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("probe", None)
    return {"init": init, "seed": seed, "sweep_id": sweep, **data}


def _failed(init: str, seed: int, sweep: str, error: BaseException) -> dict[str, Any]:
    nan = math.nan
    return {
        "init": init, "seed": seed, "sweep_id": sweep, "status": "failed", "steps": 0, "wall_time": 0.0,
        "diverged_at": None, "error": f"{type(error).__name__}: {error}", "history": [], "info": {},
        "final": {"train_loss": nan, "train_accuracy": nan, "test_loss": nan, "test_accuracy": nan},
    }


def run_task(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one task -- one init, some seeds -- and return one record per run.

    ``task``: ``{"config": CompareConfig as dict, "sweep_id": str, "init": str,
    "seeds": [int, ...]}``. With ``config["batched"]`` the seeds are trained
    together (:func:`initlab.lab.batched.train_stacked`), else one by one
    (:func:`initlab.lab.trainer.train`); the numbers agree to float tolerance.
    An init that raises gives records with status ``"failed"`` and the error.
    """
    from initlab.lab.batched import make_model, train_stacked
    from initlab.lab.trainer import train

    config, init, seeds, sweep = task["config"], task["init"], list(task["seeds"]), task["sweep_id"]
    dataset = _dataset(config)
    options = CompareConfig(**{**config, "inits": tuple(config["inits"]), "seeds": tuple(config["seeds"])}).train_options()
    info = {"init": init, "model": config["model"], "dataset": config["dataset"]}
    records: list[dict[str, Any]] = []
    models, model_seeds = [], []
    for seed in seeds:
        try:
            models.append(make_model(config["model"], dataset, init, seed, init_batch_size=config["init_batch_size"]))
            model_seeds.append(seed)
        except Exception as error:  # an init that cannot be applied fails its runs, the sweep goes on
            records.append(_failed(init, seed, sweep, error))
    if not models:
        return records
    if config["batched"] and len(models) > 1:
        results = train_stacked(models, dataset, model_seeds, infos=[info] * len(models), **options)
    else:
        results = [train(model, dataset, seed=seed, info=info, **options) for model, seed in zip(models, model_seeds)]
    records.extend(_record(result, init, seed, sweep) for result, seed in zip(results, model_seeds))
    return records


# ---------------------------------------------------------------- the sweep


def _refuse_foreign(store: ResultStore, planned: list[str], owned: set[str]) -> None:
    foreign = [name for name in planned if name not in owned and (store.root / name).exists()]
    if foreign:
        raise FileExistsError(
            f"{store.root} already holds {', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}, which "
            "initlab did not write; initlab never deletes or overwrites such files: move them or choose another --out"
        )


def _prepare_store(store: ResultStore, config: CompareConfig, sweep: str, resume: bool, force: bool,
                   planned: list[str], *, delete: bool) -> set[str]:
    """Refuse a folder the sweep may not write into; with ``delete`` and ``force``, delete the old sweep's files.

    Returns the relative paths the manifest lists as initlab's. A folder with
    files but no manifest is initlab's only if ``force`` (then its files stay
    and none may be in the way); a manifest's sweep is continued only with
    ``resume`` and deleted only with ``force`` -- and then only the files
    that manifest lists.
    """
    if resume and force:
        raise ValueError("choose one of resume and force")
    manifest = store.read_manifest()
    if manifest is not None and manifest.get("kind") != MANIFEST_KIND:
        raise FileExistsError(
            f"{store.root} holds a {MANIFEST} that initlab did not write (kind {manifest.get('kind')!r}); initlab "
            "never deletes or overwrites such files: move it or choose another --out"
        )
    owned = store.owned(manifest)
    if manifest is None:
        if store.entries() and not force:
            raise FileExistsError(
                f"{store.root} is not empty and holds no initlab sweep (no {MANIFEST}); choose a new or empty "
                "folder, or --force to write the sweep's files beside the ones there (they are never touched)"
            )
        _refuse_foreign(store, planned, owned)
        return owned
    same = manifest.get("sweep_id") == sweep
    if resume and not same:
        theirs = manifest.get("config", {})
        theirs = theirs if isinstance(theirs, dict) else {}
        ours = config.identity()
        differ = sorted(k for k in set(theirs) | set(ours) if k in ours and theirs.get(k) != ours.get(k))
        raise FileExistsError(
            f"{store.root} holds a different sweep (settings differ: "
            + ", ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in differ)
            + "); --resume continues only the same sweep (inits and seeds may change); use --force to start over"
        )
    if not resume and not force:
        what = "this sweep" if same else "a different sweep"
        raise FileExistsError(
            f"{store.root} already holds {what} (sweep {manifest.get('sweep_id')}); use --resume to continue "
            f"it or --force to delete its results and start over"
        )
    _refuse_foreign(store, planned, owned)
    if force and delete:
        store.clear(owned)
        return set()
    return owned


def _tasks(config: CompareConfig, sweep: str, todo: list[tuple[str, int]]) -> list[dict[str, Any]]:
    config_dict = asdict(config)
    tasks = []
    for init in config.inits:
        seeds = [seed for name, seed in todo if name == init]
        size = config.seeds_per_task or len(seeds) or 1
        for start in range(0, len(seeds), size):
            tasks.append({"config": config_dict, "sweep_id": sweep, "init": init, "seeds": seeds[start : start + size]})
    return tasks


def run_compare(
    config: CompareConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    retry_failed: bool = True,
    break_lock: bool = False,
    on_record: Callable[[dict[str, Any], int, int], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    plots: bool = True,
) -> CompareResult:
    """Run (or resume) the sweep ``config`` into ``out_dir`` and write its tables and figures.

    Everything is checked before the first write: the config
    (:func:`check_config`: names, every init's options, the model against the
    data set, the executor), the folder (:func:`initlab.lab.store.check_out_dir`)
    and who owns it. A folder with files is taken only when it holds this
    sweep and ``resume`` is given (finished runs are kept and skipped; runs
    that failed are run again unless ``retry_failed=False``; a record that
    fails the schema is reported through ``on_notice`` and run again), or
    with ``force``: then the files the old manifest lists are deleted, and
    nothing else. A file initlab did not write is never deleted or
    overwritten. The sweep holds the folder's lock while it runs
    (``break_lock`` clears a stale one). ``on_record(record, done, total)`` is
    called after each run's record is stored.
    """
    if not isinstance(config, CompareConfig):
        raise TypeError(f"config must be a CompareConfig, got {type(config).__name__}")
    check_config(config)
    root = check_out_dir(out_dir)
    identity = config.identity()
    sweep = sweep_id(identity)
    store = ResultStore(root)
    wanted = [(init, seed) for init in config.inits for seed in config.seeds]
    outputs = ["results.csv", "leaderboard.csv", "leaderboard.md",
               *(("loss_curves.png", "final_accuracy.png") if plots else ())]
    planned = store.planned(wanted, outputs)
    check_unlocked(root, break_stale=break_lock)  # refusals before any write: a sweep in the folder, ...
    _prepare_store(store, config, sweep, resume, force, planned, delete=False)  # ... then who owns the files
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"the output folder (--out) {str(root)!r} cannot be created: {error.strerror}") from None
    with sweep_lock(root, break_stale=break_lock):
        owned = _prepare_store(store, config, sweep, resume, force, planned, delete=True)
        return _sweep(config, store, sweep, wanted, planned, owned, retry_failed, on_record,
                      on_notice or (lambda text: warnings.warn(text, UserWarning, stacklevel=3)), plots)


def _sweep(config: CompareConfig, store: ResultStore, sweep: str, wanted: list[tuple[str, int]], planned: list[str],
           owned: set[str], retry_failed: bool, on_record: Callable[[dict[str, Any], int, int], None] | None,
           on_notice: Callable[[str], None], plots: bool) -> CompareResult:
    """The sweep itself, in a folder already checked and locked."""
    started = time.time()
    records, problems = store.scan_records()
    wanted_paths = {store.record_path(init, seed) for init, seed in wanted}
    problems = [(path, problem) for path, problem in problems if path in wanted_paths]  # others are not this sweep's
    for path, problem in problems:
        on_notice(f"record {store.relative(path)} {problem}; its run is done again")
    finished = {(r["init"], int(r["seed"])) for r in records
                if r["sweep_id"] == sweep and not (retry_failed and r["status"] == "failed")}
    todo = [pair for pair in wanted if pair not in finished]
    previous = store.read_manifest()
    manifest = {
        "kind": MANIFEST_KIND, "sweep_id": sweep, "config": config.identity(),
        "inits": list(config.inits), "seeds": list(config.seeds),
        "executor": config.executor, "workers": config.workers, "versions": environment(),
        "started": started, "complete": False, "written": sorted(owned | set(planned)),
    }
    if previous is not None:
        history = previous.get("history", [])
        manifest["history"] = [*(history if isinstance(history, list) else []),
                               {k: previous.get(k) for k in ("started", "finished")}]
    store.write_manifest(manifest)

    done = len(wanted) - len(todo)
    run_time = 0.0
    tasks = _tasks(config, sweep, todo)
    for task_records in execute(run_task, tasks, executor=config.executor, workers=config.workers,
                                address=config.ray_address):
        for record in task_records:
            store.write_record(record)
            done += 1
            run_time += float(record.get("wall_time", 0.0))
            if on_record is not None:
                on_record(record, done, len(wanted))

    wanted_set = set(wanted)
    records = [r for r in store.read_records() if r["sweep_id"] == sweep and (r["init"], r["seed"]) in wanted_set]
    from initlab.lab.data import load_dataset

    num_classes = load_dataset(config.dataset, seed=config.data_seed, **config.dataset_options).num_classes
    board = leaderboard(records, loss_threshold=config.loss_threshold, num_classes=num_classes)
    files = _write_outputs(store, records, board, config, plots)
    markdown = leaderboard_markdown(board, config.loss_threshold)
    finished_at = time.time()
    manifest.update({
        "finished": finished_at, "complete": len(records) == len(wanted),
        "timings": {"wall_seconds": finished_at - started, "train_seconds_this_session": run_time,
                    "runs_this_session": len(todo), "runs_skipped": len(wanted) - len(todo)},
        "counts": {status: sum(r["status"] == status for r in records) for status in STATUSES},
        "files": {name: path.name for name, path in files.items()},
    })
    store.write_manifest(manifest)
    return CompareResult(out_dir=store.root, records=records, leaderboard=board, leaderboard_markdown=markdown,
                         files=files, ran=len(todo), skipped=len(wanted) - len(todo), manifest=manifest,
                         rerun=[(store.relative(path), problem) for path, problem in problems])


def _write_outputs(store: ResultStore, records: list[dict[str, Any]], board: list[LeaderRow], config: CompareConfig,
                   plots: bool) -> dict[str, Path]:
    from initlab.lab.store import atomic_write_text

    root = store.root
    files: dict[str, Path] = {}
    rows = tidy_rows(records)
    # CSV on every machine: the output's format never depends on which packages happen to be installed
    files["results"] = write_table(root / "results.csv", rows, TIDY_COLUMNS)
    board_rows = leaderboard_dicts(board)
    files["leaderboard"] = write_table(root / "leaderboard.csv", board_rows, list(LeaderRow.__dataclass_fields__))
    atomic_write_text(root / "leaderboard.md", leaderboard_markdown(board, config.loss_threshold))
    files["leaderboard_md"] = root / "leaderboard.md"
    if plots and records:
        from initlab.lab.plots import plot_final_accuracy, plot_loss_curves

        title = f"{config.model} on {config.dataset}"
        files["loss_curves"] = plot_loss_curves(records, root / "loss_curves.png", title=title)
        files["final_accuracy"] = plot_final_accuracy(records, root / "final_accuracy.png", title=title)
    return files
