"""Raw dataset loaders: each returns uint8/float image tensors (N, C, H, W) and int64 labels."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import UserError


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8), labels) from the CSV that scikit-learn ships.

    **Decision:** read the bundled file directly; `sklearn.datasets` would import most of
    scikit-learn and scipy (about 1 s) in every process that uses digits. scikit-learn's own loader
    stays the fallback if the file ever moves."""
    import gzip
    from importlib.util import find_spec

    spec = find_spec("sklearn")  # locates the package without importing it
    csv = Path(next(iter(spec.submodule_search_locations)), "datasets", "data", "digits.csv.gz") if spec else None
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits as sk_digits

        bunch = sk_digits()
        return bunch.images, bunch.target
    with gzip.open(csv, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def load_digits(**_: object) -> dict:
    """scikit-learn's 8x8 handwritten digits (1,797 images, bundled; values 0..16)."""
    images, labels = _digits_arrays()
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    order = np.random.default_rng(12345).permutation(len(y))  # fixed test split: 20 %
    n_test = len(y) // 5
    test, train = torch.from_numpy(order[:n_test]), torch.from_numpy(order[n_test:])
    return {"train": (x[train], y[train]), "test": (x[test], y[test]), "num_classes": 10,
            "scale": 16.0, "flip": False}


def load_synthetic(**_: object) -> dict:
    """Tiny learnable data for tests: 4 classes of 3x8x8 noisy prototype patterns."""
    gen = torch.Generator().manual_seed(7)
    prototypes = torch.rand(4, 3, 8, 8, generator=gen)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 4
        x = prototypes[y] + 0.35 * torch.randn(n, 3, 8, 8, generator=gen)
        return x.clamp(0, 1), y

    return {"train": make(480), "test": make(160), "num_classes": 4, "scale": 1.0, "flip": True}


def _torchvision_cifar(cls_name: str, classes: int) -> Callable[..., dict]:
    def load(*, data_dir: Path | None, download: bool, **_: object) -> dict:
        import torchvision

        if data_dir is None:
            raise UserError(f"{cls_name} needs --data-dir", where="--data-dir",
                            fix=f"point --data-dir at the {cls_name} folder (add --download to fetch it)")
        cls = getattr(torchvision.datasets, cls_name)
        try:
            parts = {split: cls(str(data_dir), train=(split == "train"), download=download)
                     for split in ("train", "test")}
        except RuntimeError as exc:
            raise UserError(f"{cls_name} not found or damaged ({exc})", where=str(data_dir),
                            fix="pass --download (needs internet) or the folder holding "
                                f"the extracted {cls_name} batches") from None
        out = {split: (torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                       torch.tensor(ds.targets, dtype=torch.int64)) for split, ds in parts.items()}
        return {**out, "num_classes": classes, "scale": 255.0, "flip": True}
    return load


def load_imagefolder(*, data_dir: Path | None, image_size: int | None, skip_bad_images: bool,
                     **_: object) -> dict:
    """`data_dir/train/<class>/*` and `data_dir/val/` or `data_dir/test/` (same classes)."""
    if data_dir is None:
        raise UserError("imagefolder needs --data-dir", where="--data-dir",
                        fix="point it at a folder with train/ and val/ (or test/) class folders")
    train_dir = data_dir / "train"
    test_dir = next((data_dir / s for s in ("val", "test") if (data_dir / s).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise UserError("expected train/ and val/ (or test/) class folders", where=str(data_dir),
                        fix="unpack the dataset so that DIR/train/<class>/*.jpg exists")
    train_x, train_y, classes = _read_folder(train_dir, image_size, skip_bad_images, None)
    test_x, test_y, _ = _read_folder(test_dir, image_size or train_x.shape[-1], skip_bad_images,
                                     classes)
    return {"train": (train_x, train_y), "test": (test_x, test_y), "num_classes": len(classes),
            "scale": 255.0, "flip": True}


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _read_folder(root: Path, size: int | None, skip_bad: bool,
                 classes: list[str] | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from PIL import Image, UnidentifiedImageError

    found = sorted(d.name for d in root.iterdir() if d.is_dir())
    if classes is None:
        classes = found
    elif found != classes:
        raise UserError(f"class folders differ from train/ ({found} vs {classes})", where=str(root),
                        fix="use the same class folders in every split")
    if not classes:
        raise UserError("no class folders", where=str(root), fix="put images in ROOT/<class>/")
    images, labels, skipped = [], [], 0
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(path) as img:
                    img = img.convert("RGB")
                    if size is None:
                        size = img.size[0]
                    if img.size != (size, size):
                        img = img.resize((size, size), Image.BILINEAR)
                    images.append(np.asarray(img, dtype=np.uint8))
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                if not skip_bad:
                    raise UserError(f"unreadable image ({type(exc).__name__})", where=str(path),
                                    fix="remove or replace it, or pass --skip-bad-images") from None
                skipped += 1
                continue
            labels.append(label)
    if skipped:
        print(f"skipped {skipped} unreadable image(s) in {root}")
    if not images:
        raise UserError("no readable images", where=str(root), fix="check the folder")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.int64), classes


LOADERS: dict[str, Callable[..., dict]] = {
    "digits": load_digits,
    "cifar10": _torchvision_cifar("CIFAR10", 10),
    "cifar100": _torchvision_cifar("CIFAR100", 100),
    "imagefolder": load_imagefolder,
    "synthetic": load_synthetic,
}
