"""Generate the target task's training set (``assets/train.npz``) and held-back test set (``hidden/data/test.npz``).

    python challenges/finetune/tools/make_data.py            # write both files
    python challenges/finetune/tools/make_data.py --check    # regenerate in memory, compare with the files

10 shape classes (``shapes.TARGET_SHAPES``) drawn in the target style at 32 x 32:
30 training images per class from seed 2001 and 80 test images per class from
seed 2002. Every image is a function of (seed, index), so the two sets share no
image. Files: uint8 ``images`` [N, 3, 32, 32], int64 ``labels`` [N], ``classes``
(names, in label order).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import shapes  # noqa: E402

CHALLENGE = HERE.parent
SIZE = 32
SETS = {
    "train": (CHALLENGE / "assets" / "train.npz", 2001, 30),
    "test": (CHALLENGE / "hidden" / "data" / "test.npz", 2002, 80),
}


def generate(seed: int, per_class: int) -> dict[str, np.ndarray]:
    classes = list(shapes.TARGET_SHAPES)
    labels = shapes.balanced_labels(len(classes), per_class, seed)
    images = shapes.make_images(shapes.TARGET_SHAPES, shapes.TARGET_STYLE, seed, labels, SIZE)
    return {"images": images, "labels": labels.astype(np.int64), "classes": np.array(classes)}


def encode(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def same(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    with np.load(path, allow_pickle=False) as stored:
        return set(stored.files) == set(arrays) and all(np.array_equal(stored[k], v) for k, v in arrays.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args()
    ok = True
    for name, (path, seed, per_class) in SETS.items():
        arrays = generate(seed, per_class)
        if args.check:
            matches = path.is_file() and same(path, arrays)
            ok &= matches
            print(f"{name}: {path} {'matches' if matches else 'DIFFERS from'} seed {seed}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = encode(arrays)
        path.write_bytes(blob)
        print(f"{name}: {len(arrays['labels'])} images, {len(blob) / 1e6:.2f} MB, "
              f"sha256 {hashlib.sha256(blob).hexdigest()[:16]} -> {path}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
