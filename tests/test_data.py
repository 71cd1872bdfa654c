"""Datasets: declared shapes, deterministic splits, augmentation, clear errors."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from budgetnas.data import Augment, batches, load_dataset
from budgetnas.errors import UserError


def test_digits_shape_and_disjoint_deterministic_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.shape == (1, 8, 8) and a.num_classes == 10
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.test.y, b.test.y)
    train_rows = {tuple(r.flatten().tolist()) for r in a.train.x}
    overlap = sum(tuple(r.flatten().tolist()) in train_rows for r in a.test.x)
    assert overlap < 5  # digits has a handful of duplicate images, no more


def test_digits_read_from_the_bundled_file_equal_scikit_learns_loader():
    import numpy as np
    from sklearn.datasets import load_digits as sk_digits

    from budgetnas.data.sources import _digits_arrays

    images, labels = _digits_arrays()
    reference = sk_digits()
    assert np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)


def test_subset_is_class_balanced():
    ds = load_dataset("digits", subset=100)
    counts = torch.cat([ds.train.y, ds.val.y]).bincount()
    assert counts.sum() == 100 and counts.max() - counts.min() <= 1


def test_augment_keeps_shape_and_is_seeded():
    ds = load_dataset("synthetic")
    aug = Augment(crop_padding=2, flip=True, cutout=4)
    x = ds.normalize(ds.train.x[:8])
    one = aug(x, torch.Generator().manual_seed(1))
    two = aug(x, torch.Generator().manual_seed(1))
    assert one.shape == x.shape and torch.equal(one, two) and not torch.equal(one, x)


def test_batches_shard_across_ranks():
    ds = load_dataset("synthetic")
    seen = []
    for rank in range(2):
        gen = torch.Generator().manual_seed(3)
        seen.append([y for _, y in batches(ds.train, ds, 32, gen=gen, shuffle=True, rank=rank,
                                           world_size=2)])
    assert len(seen[0]) == len(seen[1])
    assert not torch.equal(seen[0][0], seen[1][0])


def test_imagefolder_and_bad_image(tmp_path):
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (12, 12), (i * 40, 10, 200 if label == "cat" else 0)).save(folder / f"{i}.png")
    ds = load_dataset("imagefolder", tmp_path, image_size=8)
    assert ds.shape == (3, 8, 8) and ds.num_classes == 2 and len(ds.test) == 12
    (tmp_path / "train" / "cat" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match="broken.jpg"):
        load_dataset("imagefolder", tmp_path)
    ds = load_dataset("imagefolder", tmp_path, skip_bad_images=True)
    assert len(ds.train) + len(ds.val) == 12


def test_missing_dataset_errors(tmp_path, cli_in_process, small_arch_path):
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset("cifar10")
    result = cli_in_process("train", small_arch_path, "--dataset", "imagefolder", "--data-dir", tmp_path / "nope",
                 "--out", tmp_path / "run")
    assert result.returncode == 2 and "nope" in result.stderr and "Traceback" not in result.stderr
    result = cli_in_process("train", small_arch_path, "--dataset", "cifar10", "--data-dir", tmp_path,
                 "--out", tmp_path / "run2")
    assert result.returncode == 2 and "--download" in result.stderr
