"""(Re)create ``resources/digits.npz``, the demo data set PruneLab ships with.

Source: the UCI "Optical Recognition of Handwritten Digits" data (E. Alpaydin, C. Kaynak),
test-set portion, as bundled with scikit-learn (``sklearn.datasets.load_digits``: 1,797 images
of 8x8 pixels, grey levels 0..16). scikit-learn is needed only to run this script; PruneLab
reads the written ``.npz`` with numpy alone (see ``engine/data/digits.py``).

The file holds four arrays:

* ``images``    uint8 (1797, 8, 8), values 0..16, in scikit-learn's order
* ``labels``    uint8 (1797,), digit classes 0..9
* ``train_idx`` int16 (1437,), sorted indices into ``images`` of the training split
* ``test_idx``  int16 (360,),  sorted indices of the held-out test split

The split is stratified by class and seeded (``SPLIT_SEED``), so it never changes. The zip
container is written with fixed timestamps and a fixed member order, so running the script
again reproduces the committed file byte for byte.

Usage:  python scripts/make_demo_data.py [--out resources/digits.npz]
"""
from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.io import atomic_write_bytes  # noqa: E402

DEFAULT_OUT = REPO / "resources" / "digits.npz"
SPLIT_SEED = 0
TEST_SIZE = 360  # ~20% of 1,797


def load_source() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # only needed to regenerate the file

    bunch = load_digits()
    images = np.asarray(bunch.images)
    labels = np.asarray(bunch.target)
    if images.shape != (1797, 8, 8) or labels.shape != (1797,):
        raise SystemExit(f"unexpected digits data: images {images.shape}, labels {labels.shape}")
    if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 16:
        raise SystemExit("expected integer grey levels 0..16")
    if set(np.unique(labels).tolist()) != set(range(10)):
        raise SystemExit("expected labels 0..9")
    return images.astype(np.uint8), labels.astype(np.uint8)


def make_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_SEED, shuffle=True
    )
    return np.sort(train_idx).astype(np.int16), np.sort(test_idx).astype(np.int16)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``np.load``-readable .npz, deflate-compressed, with fixed timestamps (reproducible)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    images, labels = load_source()
    train_idx, test_idx = make_split(labels)
    assert len(np.intersect1d(train_idx, test_idx)) == 0
    assert len(train_idx) + len(test_idx) == len(labels)

    data = npz_bytes(
        {"images": images, "labels": labels, "train_idx": train_idx, "test_idx": test_idx}
    )
    atomic_write_bytes(args.out, data)

    print(f"wrote {args.out} ({len(data):,} bytes)")
    print(f"  images {images.shape} {images.dtype}, train {len(train_idx)}, test {len(test_idx)}")
    for name, idx in (("train", train_idx), ("test", test_idx)):
        counts = np.bincount(labels[idx], minlength=10)
        print(f"  {name:5s} per class: {counts.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
