"""Estimate a neural model's epoch on one GPU from what its CPU epoch launches.

Usage::

    SESSIONBENCH_CACHE=CACHE python scripts/gpu_estimate.py --data-dir DATA \\
        --datasets yoochoose-1-64,diginetica --models srgnn,gru4rec --results gpu.jsonl
    python scripts/gpu_estimate.py --table gpu.jsonl

This is an **estimate for a machine that was not available**, not a
measurement. What is measured, on this CPU, one thread, per dataset and
model (the model's default hyper-parameters):

* one training epoch on the prefixes of the first ``--sessions`` training
  sessions, with the full catalogue, under ``torch.profiler``: the optimiser
  steps, the operators per step that would each launch a GPU kernel (leaf
  ``aten::`` operators that compute: not views, allocations or host-side
  scalar conversions), the FLOPs of the matrix products per step (the
  profiler's count for ``mm``, ``addmm``, ``bmm``), the rows per step and
  the parameters;
* the same for a validation pass over the first ``--valid-sessions``
  validation sessions, per case;
* the host's own seconds per step: the same sessions and steps on a
  miniature of the model (a 64-item catalogue, widths of 8), whose
  arithmetic is negligible, so that what remains is the work a GPU does not
  take over (Python, operator dispatch, autograd, the optimiser's calls,
  batch building); likewise per validation case.

The model of a step on the GPU, with the GPU's rates given as options
(printed with the table)::

    host   = host_seconds + kernels * launch_us                the host issues every kernel
    device = flops / gpu_tflops + bytes / gpu_gbps             the GPU's work
    bytes  = 28 * parameters                                   Adam: read p, g, m, v; write p, m, v
           + 20 * rows * (n_items + 1)                         scores written, read by the softmax, its
                                                               gradient written, read by two products
    step   = host + device                                     no overlap assumed: an upper estimate

An epoch over ``train`` (or ``train_tr``) is the step scaled by the steps
per training prefix; a validation pass the case cost by the validation
cases (its bytes: ``12 * (n_items + 1)`` per case). The defaults describe one
NVIDIA H100: fp32 matrix products (torch's default, without TF32) at about
40% of the 67 TFLOP/s peak, HBM at about 60% of 3.35 TB/s, and 4 us per
kernel launch on top of the host's dispatch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

#: operators that launch no kernel (views, metadata, allocation, host scalars)
NO_KERNEL = frozenset(
    "aten::" + name
    for name in (
        "empty empty_strided empty_like view as_strided t transpose expand reshape _reshape_alias unsqueeze "
        "squeeze select slice detach alias permute resize_ lift_fresh _unsafe_view set_ result_type "
        "is_nonzero size stride numel dim contiguous to expand_as narrow split chunk unbind "
        "broadcast_tensors unflatten flatten view_as diagonal _has_compatible_shallow_copy_type "
        "is_same_size item _local_scalar_dense scalar_tensor lift resolve_conj resolve_neg conj _conj _neg_view"
    ).split()
)
SCALAR_COPIES = frozenset({"aten::copy_", "aten::_to_copy"})
MATMUL = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"})
GPU_DEFAULTS = {"gpu_tflops": 27.0, "gpu_gbps": 2000.0, "launch_us": 4.0}


def miniature(data, n_items: int = 64):
    """The same sessions over a catalogue of ``n_items`` items (item ``i``
    becomes ``(i - 1) % n_items + 1``): every step runs the same operators on
    the same batches, but its arithmetic is negligible, so what a step costs
    is the host's work (Python, dispatch, autograd, the optimiser's calls,
    batch building), the part a GPU does not speed up."""
    from harness.data.dataset import SessionDataset, SessionSplit

    def small(split):
        events = split.events.copy()
        events["item"] = (events["item"] - 1) % n_items + 1
        return SessionSplit(events)

    item_map = {str(i): i for i in range(1, n_items + 1)}
    return SessionDataset(data.name, n_items, item_map, small(data.train), small(data.train_tr), small(data.valid),
                          small(data.test), data.meta)


#: hyper-parameters set to :data:`MINIATURE_WIDTH` in the miniature (the others are the model's defaults)
WIDTHS = ("hidden_size", "embedding_size", "factors")
MINIATURE_WIDTH = 8


def host_seconds(name: str, params: dict, small, epochs: int = 3) -> tuple[float, float]:
    """CPU seconds of the calling thread (one torch thread) per optimiser
    step (the fastest of ``epochs`` epochs) and per validation case of model
    ``name`` on the :func:`miniature` ``small``."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from harness.evaluation.evaluate import evaluate
    from harness.models.registry import make_model

    widths = {width: MINIATURE_WIDTH for width in WIDTHS if width in make_model(name, {}).get_params()}
    steps = [0]
    handle = register_optimizer_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    model = make_model(name, {**params, "epochs": epochs, **widths})
    epoch_seconds = []
    plain_epoch = model._train_epoch

    def timed_epoch(epoch: int) -> float:  # CPU seconds of this thread: steadier than wall time under load
        start = time.thread_time()
        try:
            return plain_epoch(epoch)
        finally:
            epoch_seconds.append(time.thread_time() - start)

    model._train_epoch = timed_epoch
    try:
        model.fit(small, seed=0)
    finally:
        handle.remove()
    per_step = min(epoch_seconds) * epochs / steps[0]
    start = time.thread_time()
    result = evaluate(model, small, split="valid", ks=(20,))
    return per_step, (time.thread_time() - start) / max(result.n_cases, 1)


def profile_counts(events) -> dict:
    """Kernel-launching operators, matrix-product FLOPs and optimiser steps
    in a list of ``torch.profiler`` events."""
    kernels = flops = steps = 0
    for event in events:
        if event.name.startswith("Optimizer.step#"):
            steps += 1
        if event.name in MATMUL:
            flops += event.flops or 0
        if _computes(event) and not any(_computes(child) for child in event.cpu_children):
            kernels += 1
    return {"kernels": kernels, "flops": float(flops), "steps": steps}


def _computes(event) -> bool:
    """Whether a profiled operator would launch a GPU kernel: an ``aten::``
    operator that is not a view or allocation, nor a copy of 0-dimensional
    values (a Python number converted for an operator stays on the host).
    Shapes are known when the profile recorded them."""
    if not event.name.startswith("aten::") or event.name in NO_KERNEL:
        return False
    shapes = getattr(event, "input_shapes", None)
    return not (event.name in SCALAR_COPIES and shapes and all(not shape for shape in shapes))


def child(args: argparse.Namespace) -> dict:
    """The CPU measurements of one dataset and model (see the module docstring)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from harness.data.dataset import SessionDataset
    from harness.evaluation.evaluate import evaluate
    from harness.models.registry import make_model
    from harness.data.specs import load_dataset

    torch.set_num_threads(1)
    data = load_dataset(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir)

    train, valid = data.train.head(args.sessions), data.valid.head(args.valid_sessions)
    subset = SessionDataset(data.name, data.n_items, data.item_map, train, train, valid, valid, data.meta)
    params = {"epochs": 1, "patience": 0, "device": "cpu", "num_threads": 1}
    model = make_model(args.model, params)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True) as prof:
        model.fit(subset, seed=0)
    training = profile_counts(prof.events())
    with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True) as prof:
        result = evaluate(model, subset, split="valid", ks=(20,))
    validation = profile_counts(prof.events())
    steps = max(training["steps"], 1)
    defaults = make_model(args.model, {}).get_params()  # the selection rule of a real run

    host_step, host_case = host_seconds(args.model, params, miniature(SessionDataset(
        data.name, data.n_items, data.item_map, *[split.head(args.host_sessions) for split in
                                                  (data.train, data.train, data.valid, data.valid)], data.meta)))
    return {
        "n_items": int(data.n_items),
        "parameters": int(sum(p.numel() for p in model.network_.parameters())),
        "subset_prefixes": int(train.n_prefixes),
        "steps": training["steps"],
        "kernels_per_step": training["kernels"] / steps,
        "flops_per_step": training["flops"] / steps,
        "rows_per_step": train.n_prefixes / steps,
        "host_ms_per_step": host_step * 1e3,
        "valid_cases": int(result.n_cases),
        "valid_kernels_per_case": validation["kernels"] / max(result.n_cases, 1),
        "valid_flops_per_case": validation["flops"] / max(result.n_cases, 1),
        "valid_host_ms_per_case": host_case * 1e3,
        "train_prefixes": int(data.train.n_prefixes),
        "train_tr_prefixes": int(data.train_tr.n_prefixes),
        "full_valid_cases": int(data.valid.n_prefixes),
        "max_epochs": int(defaults["epochs"]),
        "patience": int(defaults["patience"]),
    }


def estimate(row: dict, gpu: dict) -> dict:
    """Seconds of one GPU epoch over ``train`` and ``train_tr`` and of one
    validation pass, from a :func:`child` row and the GPU's assumed rates
    (``gpu_tflops``, ``gpu_gbps``, ``launch_us``; see the module docstring)."""
    flop_s, byte_s, launch_s = gpu["gpu_tflops"] * 1e12, gpu["gpu_gbps"] * 1e9, gpu["launch_us"] * 1e-6
    host = row["host_ms_per_step"] * 1e-3 + row["kernels_per_step"] * launch_s
    step_bytes = 28 * row["parameters"] + 20 * row["rows_per_step"] * (row["n_items"] + 1)
    step = host + row["flops_per_step"] / flop_s + step_bytes / byte_s
    case = (row["valid_host_ms_per_case"] * 1e-3 + row["valid_kernels_per_case"] * launch_s
            + row["valid_flops_per_case"] / flop_s + 12 * (row["n_items"] + 1) / byte_s)
    per_prefix = step * row["steps"] / row["subset_prefixes"]
    return {
        "step_ms": step * 1e3,
        "host_share": host / step,
        "train_epoch_s": per_prefix * row["train_prefixes"],
        "train_tr_epoch_s": per_prefix * row["train_tr_prefixes"],
        "valid_pass_s": case * row["full_valid_cases"],
    }


def run_seconds(row: dict, est: dict, chosen: int) -> float:
    """Seconds of a whole run that selects epoch ``chosen``: ``chosen +
    patience`` epochs on ``train_tr`` (capped at the maximum), each followed by
    a validation pass, then ``chosen`` epochs on ``train``."""
    selection = min(chosen + row["patience"], row["max_epochs"])
    return selection * (est["train_tr_epoch_s"] + est["valid_pass_s"]) + chosen * est["train_epoch_s"]


def measure(args: argparse.Namespace) -> int:
    import subprocess

    for dataset in args.datasets.split(","):
        for model in args.models.split(","):
            command = [sys.executable, str(Path(__file__).resolve()), "--child", "--data-dir", str(args.data_dir),
                       "--cache-dir", str(args.cache_dir), "--dataset", dataset, "--model", model,
                       "--sessions", str(args.sessions), "--valid-sessions", str(args.valid_sessions),
                       "--host-sessions", str(args.host_sessions)]
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            row = {"dataset": dataset, "model": model, "load": os.getloadavg()[0],
                   **json.loads(proc.stdout.strip().splitlines()[-1])}
            with args.results.open("a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return 0


def table(path: Path, gpu: dict, chosen: dict[str, int]) -> int:
    """The Markdown table of docs/scale.md from the stored rows: a step, an
    epoch and a validation pass, and whole runs that select epoch
    ``chosen[model]`` or run every epoch."""
    print("assumed: " + ", ".join(f"{k} {v:g}" for k, v in gpu.items()))
    print("| dataset | model | kernels / step | matmul MFLOP / step | host ms / step | GPU ms / step (host share) "
          "| train epoch s | train_tr epoch s | validation pass s | run, chosen epoch b | run, every epoch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        e = estimate(row, gpu)
        b = chosen.get(row["model"], 5)
        print(f"| {row['dataset']} | {row['model']} | {row['kernels_per_step']:.0f} "
              f"| {row['flops_per_step'] / 1e6:.0f} | {row['host_ms_per_step']:.2f} | {e['step_ms']:.2f} "
              f"({e['host_share']:.0%}) | {e['train_epoch_s']:.0f} | {e['train_tr_epoch_s']:.0f} "
              f"| {e['valid_pass_s']:.1f} | b = {b}: {run_seconds(row, e, b) / 60:.0f} min "
              f"| {run_seconds(row, e, row['max_epochs']) / 60:.0f} min |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("SESSIONBENCH_CACHE", "fullsize-cache")))
    parser.add_argument("--datasets", default="yoochoose-1-64,diginetica")
    parser.add_argument("--models", default="srgnn,gru4rec")
    parser.add_argument("--sessions", type=int, default=300, help="training sessions of the profiled epoch")
    parser.add_argument("--valid-sessions", type=int, default=300, help="validation sessions of the profiled pass")
    parser.add_argument("--host-sessions", type=int, default=3000, help="training and validation sessions of the "
                        "miniature that times the host's work")
    parser.add_argument("--results", type=Path, help="JSON lines file to append the measurements to")
    parser.add_argument("--table", type=Path, help="print the estimate from these stored measurements")
    for name, value in GPU_DEFAULTS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=value)
    parser.add_argument("--chosen", default="srgnn=5,gru4rec=3",
                        help="the selected epoch of a typical run, per model (others: 5)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    if args.table:
        chosen = {name: int(b) for name, b in (item.split("=") for item in args.chosen.split(","))}
        return table(args.table, {name: getattr(args, name) for name in GPU_DEFAULTS}, chosen)
    if args.data_dir is None or args.results is None:
        parser.error("measuring needs --data-dir and --results (or give --table)")
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
