"""GPU check for a machine with CUDA (not part of the CPU test suite).

    python scripts/check_cuda.py [DATA_DIR]

1. SR-GNN and GRU4Rec trained with the same seed on CPU and on CUDA give the
   same scores on a tiny dataset (up to float tolerance);
2. the SR-GNN and GRU4Rec epoch times on yoochoose-100k on CUDA (DATA_DIR
   defaults to the yoochoose-100k folder of the data folder, see harness.paths).
Prints one line per check; exits 1 when a check fails or CUDA is missing.
"""

import sys
from pathlib import Path

import torch

from harness.paths import data_dir as data_root
from harness.models.registry import make_model
from harness.data.specs import load_dataset
from harness.models.testing import tiny_dataset

SMALL = {"srgnn": {"hidden_size": 16, "epochs": 2, "patience": 0},
         "gru4rec": {"hidden_size": 16, "batch_size": 16, "epochs": 2, "patience": 0}}


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    ok = True
    data = tiny_dataset()
    batch = data.prefixes("test").batch(slice(0, 64))
    for name, params in SMALL.items():
        cpu = make_model(name, {**params, "device": "cpu"}).fit(data, seed=0).score(batch)
        gpu = make_model(name, {**params, "device": "cuda"}).fit(data, seed=0).score(batch).cpu()
        diff = float((cpu - gpu).abs().max())
        ok &= diff < 1e-3
        print(f"{name}: max |cpu - cuda| score difference {diff:.2e} ({'ok' if diff < 1e-3 else 'MISMATCH'})")
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else data_root() / "yoochoose-100k"
    big = load_dataset("yoochoose-100k", data_dir=data_dir)
    for name in SMALL:
        model = make_model(name, {"epochs": 2, "patience": 0, "device": "cuda"}).fit(big, seed=0)
        seconds = [round(r["seconds"], 2) for r in model.training_curve_]
        print(f"{name}: CUDA epoch seconds on yoochoose-100k {seconds} ({torch.cuda.get_device_name(0)})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
