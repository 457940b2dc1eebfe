"""Data sets of the lab, loaded by name and entirely offline.

Every loader returns a :class:`Dataset` whose inputs are flat float32 rows
(``x_train.shape == (n, prod(input_shape))``) standardised per feature with
the training split's mean and standard deviation (features that are constant
in the training split are only centred), and whose labels are int64 class
indices. The train/test split is a pure function of ``seed``.

Names
-----
``digits`` (default)
    scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).
``mnist1d``
    made on the spot by the ``mnist1d`` package's own generator (Greydanus,
    2020; 5000 signals of length 40, 10 classes). The package's download path
    is never used.
``mnist``, ``fashion-mnist``
    read from local IDX files (``train-images-idx3-ubyte[.gz]`` and friends)
    or one ``.npz`` with ``x_train, y_train, x_test, y_test``. Give the folder
    or file with ``path=`` or the environment variable ``INITLAB_MNIST`` /
    ``INITLAB_FASHION_MNIST`` (or a folder ``$INITLAB_DATA/mnist``,
    ``$INITLAB_DATA/fashion-mnist``). The published train/test split is kept;
    ``n_train``/``n_test`` draw a fixed subset by seed.
``circles``, ``spirals``, ``xor``, ``gaussian``
    synthetic two-dimensional problems (``gaussian`` takes ``dims`` and
    ``classes``).

>>> from initlab.lab.data import load_dataset
>>> ds = load_dataset("digits", seed=0)
>>> ds.x_train.shape, ds.num_classes, ds.image_shape
(torch.Size([1438, 64]), 10, (1, 8, 8))
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from initlab.rng.checks import check_int, check_number

__all__ = ["Dataset", "load_dataset", "list_datasets", "write_idx", "DATA_ENV"]

# environment variables naming where the MNIST-style files are
DATA_ENV = {"mnist": "INITLAB_MNIST", "fashion-mnist": "INITLAB_FASHION_MNIST"}
DATA_ROOT_ENV = "INITLAB_DATA"


@dataclass(frozen=True)
class Dataset:
    """A classification data set with a fixed train/test split.

    ``x_*`` are float32 tensors of shape ``(n, features)`` with
    ``features == prod(input_shape)``; ``y_*`` are int64 class indices in
    ``[0, num_classes)``. ``image_shape`` is the natural (channels, *spatial)
    shape of one input for convolutional models, or None for tabular data.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    name: str
    image_shape: tuple[int, ...] | None = None

    @property
    def num_features(self) -> int:
        """Number of input features, ``prod(input_shape)``."""
        return math.prod(self.input_shape)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


# ---------------------------------------------------------------- helpers


def _test_fraction(value: Any) -> float:
    return check_number("test_fraction", value, minimum=0.0, maximum=1.0, strict=True)


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (train, test) of a seeded permutation; both sides non-empty."""
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5B17])).permutation(n)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (x - mean) / std with the training split's statistics."""
    mean = x_train.mean(axis=0, keepdims=True)
    std = x_train.std(axis=0, keepdims=True)
    # constant features (digit borders) are only centred: dividing by ~0 would blow them up
    std = np.where(std > 1e-8 * max(1.0, float(np.abs(x_train).max(initial=0.0))), std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def _make(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    test_fraction: float,
    num_classes: int,
    image_shape: tuple[int, ...] | None = None,
) -> Dataset:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    train, test = _split(len(x), test_fraction, seed)
    return _finish(name, x[train], y[train], x[test], y[test], num_classes, image_shape)


def _finish(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    image_shape: tuple[int, ...] | None,
) -> Dataset:
    x_train = np.asarray(x_train, dtype=np.float64).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, dtype=np.float64).reshape(len(x_test), -1)
    x_train, x_test = _standardise(x_train, x_test)
    return Dataset(
        x_train=torch.from_numpy(x_train.astype(np.float32)),
        y_train=torch.from_numpy(np.asarray(y_train, dtype=np.int64)),
        x_test=torch.from_numpy(x_test.astype(np.float32)),
        y_test=torch.from_numpy(np.asarray(y_test, dtype=np.int64)),
        num_classes=int(num_classes),
        input_shape=(x_train.shape[1],),
        name=name,
        image_shape=image_shape,
    )


def _synthetic_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, sum(map(ord, name)), 0xDA7A]))


# ---------------------------------------------------------------- loaders


def _digits(seed: int, test_fraction: float = 0.2) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover - scikit-learn is in the lab extra
        raise ValueError(
            "dataset 'digits' needs scikit-learn (pip install 'initlab[lab]')"
        ) from error
    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return _make("digits", x, y, seed, _test_fraction(test_fraction), 10, (1, 8, 8))


def _mnist1d(
    seed: int,
    test_fraction: float = 0.2,
    num_samples: int = 5000,
    generator_seed: int = 42,
    shuffle_seq: bool = False,
) -> Dataset:
    """MNIST-1D from the package's generator (``make_dataset``), never its download."""
    try:
        import mnist1d.data  # noqa: F401
    except ImportError as error:
        raise ValueError(
            "dataset 'mnist1d' needs the mnist1d package (pip install 'initlab[lab]')"
        ) from error
    num_samples = check_int("num_samples", num_samples, minimum=20)
    generator_seed = check_int("generator_seed", generator_seed, minimum=0)
    x, y = _mnist1d_signals(num_samples, generator_seed, bool(shuffle_seq))
    length = x.shape[1]
    return _make("mnist1d", x, y, seed, _test_fraction(test_fraction), 10, (1, length))


@functools.lru_cache(maxsize=4)
def _mnist1d_signals(num_samples: int, generator_seed: int, shuffle_seq: bool) -> tuple[np.ndarray, np.ndarray]:
    """The generator's signals and labels (read-only), made once per (size, seed): splits only re-index them."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = generator_seed
    args.shuffle_seq = shuffle_seq
    args.train_split = 1.0 - 1.0 / num_samples  # we split ourselves below
    # the generator seeds Python's and NumPy's global RNGs; give the caller theirs back
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        made = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
    x = np.concatenate([made["x"], made["x_test"]]).astype(np.float64)
    y = np.concatenate([made["y"], made["y_test"]]).astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _circles(
    seed: int, n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5, test_fraction: float = 0.2
) -> Dataset:
    """Two concentric circles of radii 1 and ``factor`` with Gaussian noise."""
    n_samples = check_int("n_samples", n_samples, minimum=4)
    noise = check_number("noise", noise, minimum=0.0)
    factor = check_number("factor", factor, minimum=0.0, maximum=1.0, strict=True)
    rng = _synthetic_rng(seed, "circles")
    y = np.arange(n_samples) % 2
    angle = rng.uniform(0.0, 2 * math.pi, n_samples)
    radius = np.where(y == 0, 1.0, factor)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += noise * rng.standard_normal(x.shape)
    return _make("circles", x, y, seed, _test_fraction(test_fraction), 2)


def _spirals(
    seed: int, n_samples: int = 900, classes: int = 3, noise: float = 0.2, turns: float = 1.0,
    test_fraction: float = 0.2,
) -> Dataset:
    """``classes`` interleaved spiral arms; radius grows linearly along each arm."""
    n_samples = check_int("n_samples", n_samples, minimum=2 * check_int("classes", classes, minimum=2))
    noise = check_number("noise", noise, minimum=0.0)
    rng = _synthetic_rng(seed, "spirals")
    y = np.arange(n_samples) % classes
    position = rng.uniform(0.0, 1.0, n_samples)
    angle = 2 * math.pi * (turns * position + y / classes) + noise * rng.standard_normal(n_samples)
    x = np.stack([position * np.cos(angle), position * np.sin(angle)], axis=1)
    return _make("spirals", x, y, seed, _test_fraction(test_fraction), classes)


def _xor(seed: int, n_samples: int = 1000, noise: float = 0.0, test_fraction: float = 0.2) -> Dataset:
    """Points uniform in [-1, 1]^2 labelled by whether the signs of x1 and x2 differ."""
    n_samples = check_int("n_samples", n_samples, minimum=4)
    noise = check_number("noise", noise, minimum=0.0)
    rng = _synthetic_rng(seed, "xor")
    x = rng.uniform(-1.0, 1.0, (n_samples, 2))
    y = (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(np.int64)
    x += noise * rng.standard_normal(x.shape)
    return _make("xor", x, y, seed, _test_fraction(test_fraction), 2)


def _gaussian(
    seed: int, n_samples: int = 1000, dims: int = 10, classes: int = 2, separation: float = 1.0,
    test_fraction: float = 0.2,
) -> Dataset:
    """``classes`` unit-covariance Gaussians in ``dims`` dimensions, means ~ N(0, separation^2 I)."""
    dims = check_int("dims", dims, minimum=1)
    classes = check_int("classes", classes, minimum=2)
    n_samples = check_int("n_samples", n_samples, minimum=2 * classes)
    separation = check_number("separation", separation, minimum=0.0)
    rng = _synthetic_rng(seed, "gaussian")
    means = separation * rng.standard_normal((classes, dims))
    y = np.arange(n_samples) % classes
    x = means[y] + rng.standard_normal((n_samples, dims))
    return _make("gaussian", x, y, seed, _test_fraction(test_fraction), classes)


# ---------------------------------------------------------------- MNIST-style files

_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a NumPy array."""
    path = Path(path)
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(f"{path}: header announces {dims} ({expected} bytes) but holds {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` (uint8, int8, int16, int32, float32 or float64) as an IDX file."""
    array = np.asarray(array)
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
    if array.dtype not in codes:
        raise TypeError(f"write_idx: array dtype must be one of {sorted(map(str, codes))}, got {array.dtype}")
    code = codes[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    path = Path(path)
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + body)


def _locate(name: str, path: str | os.PathLike[str] | None) -> Path:
    env = DATA_ENV[name]
    if path is None and os.environ.get(env):
        path = os.environ[env]
    if path is None and os.environ.get(DATA_ROOT_ENV):
        path = Path(os.environ[DATA_ROOT_ENV]) / name
    where = (
        f"put the four IDX files ({', '.join(f + '[.gz]' for f in _IDX_FILES.values())}) or one .npz "
        f"with x_train, y_train, x_test, y_test in a folder and pass path=FOLDER "
        f"(CLI: --data-path), or set {env}=FOLDER, or {DATA_ROOT_ENV}=ROOT with ROOT/{name}/"
    )
    if path is None:
        raise FileNotFoundError(f"dataset {name!r} is read from local files, none given: {where}")
    found = Path(path).expanduser()
    if not found.exists():
        raise FileNotFoundError(f"dataset {name!r}: {found} does not exist; {where}")
    return found


def _read_arrays(name: str, location: Path) -> dict[str, np.ndarray]:
    if location.is_file():
        if location.suffix != ".npz":
            raise ValueError(f"dataset {name!r}: a file path must be an .npz, got {location}")
        with np.load(location) as archive:
            missing = [key for key in _IDX_FILES if key not in archive]
            if missing:
                raise ValueError(f"dataset {name!r}: {location} lacks arrays {missing}")
            return {key: np.asarray(archive[key]) for key in _IDX_FILES}
    arrays: dict[str, np.ndarray] = {}
    npz = sorted(location.glob("*.npz"))
    for key, stem in _IDX_FILES.items():
        candidates = [location / stem, location / (stem + ".gz"),
                      location / stem.replace("-idx", ".idx"), location / (stem.replace("-idx", ".idx") + ".gz")]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            if len(npz) == 1:
                return _read_arrays(name, npz[0])
            raise FileNotFoundError(
                f"dataset {name!r}: {location} has no {stem}[.gz]; put the four IDX files "
                f"({', '.join(_IDX_FILES.values())}) or one .npz with x_train, y_train, x_test, y_test there"
            )
        arrays[key] = read_idx(hit)
    return arrays


def _subset(n: int, limit: int | None, seed: int, salt: int) -> np.ndarray:
    if limit is None or limit >= n:
        return np.arange(n)
    rng = np.random.default_rng(np.random.SeedSequence([seed, salt]))
    return np.sort(rng.permutation(n)[:limit])


def _mnist_like(
    name: str, seed: int, path: str | os.PathLike[str] | None = None,
    n_train: int | None = None, n_test: int | None = None,
) -> Dataset:
    if n_train is not None:
        n_train = check_int("n_train", n_train, minimum=1)
    if n_test is not None:
        n_test = check_int("n_test", n_test, minimum=1)
    arrays = _read_arrays(name, _locate(name, path))
    for part in ("x_train", "x_test"):
        if arrays[part].ndim not in (2, 3):
            raise ValueError(f"dataset {name!r}: {part} must be (n, h, w) images, got shape {arrays[part].shape}")
    if len(arrays["x_train"]) != len(arrays["y_train"]) or len(arrays["x_test"]) != len(arrays["y_test"]):
        raise ValueError(f"dataset {name!r}: images and labels differ in count")
    image = arrays["x_train"].shape[1:]
    image_shape = (1, *image) if len(image) == 2 else None
    train = _subset(len(arrays["y_train"]), n_train, seed, 1)
    test = _subset(len(arrays["y_test"]), n_test, seed, 2)
    # pixels are scaled to [0, 1] first so a constant pixel stays exactly zero after centring
    scale = 255.0 if arrays["x_train"].dtype == np.uint8 else 1.0
    return _finish(
        name,
        arrays["x_train"][train] / scale, arrays["y_train"][train],
        arrays["x_test"][test] / scale, arrays["y_test"][test],
        10, image_shape,
    )


def _mnist(seed: int, **options: Any) -> Dataset:
    return _mnist_like("mnist", seed, **options)


def _fashion_mnist(seed: int, **options: Any) -> Dataset:
    return _mnist_like("fashion-mnist", seed, **options)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits,
    "mnist1d": _mnist1d,
    "mnist": _mnist,
    "fashion-mnist": _fashion_mnist,
    "circles": _circles,
    "spirals": _spirals,
    "xor": _xor,
    "gaussian": _gaussian,
}
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "mnist-1d": "mnist1d"}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(_LOADERS)


def load_dataset(name: str = "digits", seed: int = 0, **options: Any) -> Dataset:
    """Load the data set ``name`` with the train/test split fixed by ``seed``.

    ``options`` are passed to the loader: ``test_fraction`` (0.2) for the
    data sets split here; ``n_samples``, ``noise`` for the synthetic ones;
    ``dims``, ``classes``, ``separation`` for ``gaussian``; ``classes``,
    ``turns`` for ``spirals``; ``num_samples``, ``generator_seed`` (42, the
    canonical MNIST-1D) for ``mnist1d``; ``path``, ``n_train``, ``n_test`` for
    ``mnist`` and ``fashion-mnist``. Unknown names or options raise ValueError.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    seed = check_int("seed", seed, minimum=0)
    loader = _LOADERS[key]
    try:
        return loader(seed, **options)
    except TypeError as error:
        if "unexpected keyword argument" in str(error):
            import inspect

            accepted = [p for p in inspect.signature(loader).parameters if p != "seed"]
            if key in ("mnist", "fashion-mnist"):
                accepted = ["path", "n_train", "n_test"]
            raise ValueError(
                f"dataset {key!r} does not take option(s) {sorted(set(options) - set(accepted))}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            ) from error
        raise
