"""Data sets of the lab: offline loaders, fixed splits, standardised inputs, clear errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from initlab.lab.data import list_datasets, load_dataset, read_idx, write_idx


def test_digits_split_is_fixed_by_seed_and_inputs_are_standardised() -> None:
    first, again, other = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    assert not torch.equal(first.y_train, other.y_train)
    assert first.x_train.shape == (1438, 64) and first.x_test.shape == (359, 64)
    assert first.num_classes == 10 and first.input_shape == (64,) and first.image_shape == (1, 8, 8)
    std = first.x_train.std(dim=0, unbiased=False)
    varying = std > 0
    # per-feature standardisation with the training split's own statistics
    assert first.x_train.mean(dim=0).abs().max() < 1e-5
    assert (std[varying] - 1).abs().max() < 1e-4
    assert int(varying.sum()) >= 60  # only the always-blank border pixels stay constant


@pytest.mark.parametrize(
    ("name", "options", "features", "classes"),
    [("circles", {}, 2, 2), ("spirals", {"classes": 4}, 2, 4), ("xor", {}, 2, 2),
     ("gaussian", {"dims": 7, "classes": 3}, 7, 3)],
)
def test_synthetic_datasets_have_the_declared_shape_and_classes(name, options, features, classes) -> None:
    data = load_dataset(name, seed=3, **options)
    assert data.input_shape == (features,) and data.num_classes == classes
    assert set(data.y_train.tolist()) == set(range(classes))
    assert len(data.y_train) + len(data.y_test) == len(data.x_train) + len(data.x_test)
    assert torch.equal(load_dataset(name, seed=3, **options).x_test, data.x_test)


def test_xor_labels_follow_the_sign_rule_of_the_raw_points() -> None:
    data = load_dataset("xor", seed=0)
    # standardisation is an affine map per feature, so the sign of the centred coordinate is kept up to the mean
    x = data.x_train
    mean_shift = x.mean(0)
    assert mean_shift.abs().max() < 1e-5
    agree = ((torch.sign(x[:, 0]) != torch.sign(x[:, 1])).long() == data.y_train).float().mean()
    assert agree > 0.9


def test_mnist1d_comes_from_the_local_generator_and_leaves_global_rngs_alone() -> None:
    np.random.seed(123)  # noqa: NPY002  (the global state is what is checked)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002  (the global state is what is checked)
    random.seed(123)
    data = load_dataset("mnist1d", seed=0, num_samples=200)
    assert data.input_shape == (40,) and data.num_classes == 10 and data.image_shape == (1, 40)
    assert len(data.y_train) + len(data.y_test) == 200
    assert np.random.rand() == expected_np and random.random() == expected_py  # noqa: NPY002


def _write_mnist(folder, n_train=30, n_test=10, gz=True) -> None:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_train, 6, 6), dtype=np.uint8))
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_test, 6, 6), dtype=np.uint8))
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", (np.arange(n_test) % 10).astype(np.uint8))


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_from_a_path(tmp_path, gz) -> None:
    _write_mnist(tmp_path, gz=gz)
    data = load_dataset("mnist", path=tmp_path)
    assert data.x_train.shape == (30, 36) and data.x_test.shape == (10, 36)
    assert data.image_shape == (1, 6, 6)
    assert data.y_train.tolist() == [i % 10 for i in range(30)]
    subset = load_dataset("mnist", path=tmp_path, n_train=12, seed=4)
    assert len(subset.y_train) == 12


def test_fashion_mnist_is_found_through_its_environment_variable_and_npz(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "fashion.npz", x_train=rng.integers(0, 256, (20, 5, 5), dtype=np.uint8),
             y_train=np.arange(20) % 10, x_test=rng.integers(0, 256, (8, 5, 5), dtype=np.uint8),
             y_test=np.arange(8) % 10)
    monkeypatch.setenv("INITLAB_FASHION_MNIST", str(tmp_path))
    data = load_dataset("fashion-mnist")
    assert data.x_train.shape == (20, 25) and data.name == "fashion-mnist"


def test_idx_round_trip_keeps_values_and_rejects_other_files(tmp_path) -> None:
    array = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", array)
    assert np.array_equal(read_idx(tmp_path / "a.idx"), array)
    (tmp_path / "bad").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_missing_mnist_files_say_where_to_put_them(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("INITLAB_MNIST", raising=False)
    monkeypatch.delenv("INITLAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="INITLAB_MNIST"):
        load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", path=tmp_path)


def test_unknown_names_and_options_list_what_is_valid() -> None:
    with pytest.raises(ValueError, match="valid names: digits, mnist1d"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="accepted:.*n_samples"):
        load_dataset("circles", colour="red")
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.5)
    assert set(list_datasets()) >= {"digits", "mnist1d", "mnist", "fashion-mnist", "circles", "spirals", "xor",
                                    "gaussian"}
