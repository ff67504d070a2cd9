"""Hand-built result folders for the report tests: fake models scored on a tiny dataset, stored
with harness.run.store like real runs (no runner, so they take a second)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.evaluation.evaluate import evaluate
from harness.report import KNOWN_MODELS
from harness.run.store import write_run
from harness.models.testing import tiny_dataset

KS = (5, 10, 20, 50)


class FakeModel:
    """Scores from training counts: popularity (kind "pop"), transitions ("markov") or noise
    ("random"); ``noise`` blends in label- and seed-specific noise so that labels differ."""

    def __init__(self, kind: str, data, seed: int, noise: float = 0.05) -> None:
        n = data.n_items
        counts = np.bincount(data.train.events["item"].to_numpy(), minlength=n + 1).astype(np.float64)
        trans = np.zeros((n + 1, n + 1))
        for sess in data.train.sessions():
            np.add.at(trans, (sess[:-1], sess[1:]), 1.0)
        rng = np.random.default_rng(seed)
        self.kind = kind
        self.pop = torch.tensor(counts / counts.max())
        self.trans = torch.tensor(trans / max(trans.max(), 1.0))
        self.noise = torch.tensor(rng.normal(scale=noise, size=(n + 1, n + 1)))
        self.random = torch.tensor(rng.random((n + 1, n + 1)))

    def score(self, batch) -> torch.Tensor:
        last = batch.items.gather(1, (batch.lengths - 1).clamp(min=0)[:, None]).squeeze(1)
        if self.kind == "pop":
            return self.pop.expand(len(last), -1) + self.noise[last]
        if self.kind == "markov":
            return self.trans[last] + 0.01 * self.pop + self.noise[last]
        return self.random[last]


def _label_seed(label: str) -> int:
    return zlib.crc32(label.encode())


def timings(label: str, seed: int) -> dict[str, float]:
    """Made-up but label-specific timings (so the accuracy-latency figure has points to place)."""
    base = 0.01 * (1 + _label_seed(label) % 97)
    return {"fit_seconds": 10 * base + seed, "score_seconds": base, "prefixes_per_second": 1000 / base,
            "latency_ms_p50": base * (1 + 0.1 * seed), "latency_ms_p95": 2 * base, "latency_ms_p99": 3 * base,
            "peak_rss_mb": 100.0, "model_size": 40}


def curve(seed: int, *, valid: bool = True) -> list[dict[str, Any]]:
    rows = [{"phase": "select" if valid else "train", "epoch": e, "loss": 2.0 / e + 0.01 * seed,
             "valid_MRR@20": (0.1 + 0.02 * e) if valid else None, "seconds": 0.5} for e in range(1, 5)]
    if valid:
        rows += [{"phase": "refit", "epoch": e, "loss": 1.9 / e, "valid_MRR@20": None, "seconds": 0.6}
                 for e in range(1, 4)]
    return rows


def add_run(out: Path, data, label: str, seed: int, *, kind: str | None = None, dataset: str = "tiny",
            protocol: str = "next", stage: str = "test", params: dict | None = None, model: str | None = None,
            with_curve: bool = False, valid_curve: bool = True, extra: dict | None = None,
            run_id: str | None = None) -> str:
    """Store one run of a fake model; returns its run id."""
    kind = kind or ("markov" if _label_seed(label) % 3 else "pop")
    fake = FakeModel(kind, data, seed + _label_seed(label) % 1000)
    split = "valid" if stage == "tune" else "test"
    ev = evaluate(fake, data, ks=KS, batch_size=64, split=split)
    params = dict(params or {})
    run_id = run_id or f"{dataset}-{label}-s{seed}-{protocol}" + ("" if stage == "test" else f"-{stage}")
    manifest = {
        "run_id": run_id, "status": "complete", "suite": "test", "stage": stage, "dataset": dataset,
        "model": model or label.split("[")[0], "label": label, "params": params, "seed": seed, "protocol": protocol,
        "ks": list(KS), "timings": timings(label, seed), "metrics": ev.metrics(sorted({*KS, 20})),
        "trains_by_epoch": with_curve,
        "spec": {"model": model or label.split("[")[0], "params": params, "seed": seed, "stage": stage},
        **(extra or {}),
    }
    write_run(out, manifest, evaluation=ev, curve=curve(seed, valid=valid_curve) if with_curve else None)
    return run_id


def retrieval_rows(single_qps: dict[str, float], *, n_items: int = 300) -> list[dict[str, Any]]:
    """A run's ``manifest["retrieval"]``: one row per setting label (``method`` or ``method[k=v,...]``,
    parameters not named take their defaults) searched at ``single_qps[label]`` queries/s, with
    made-up accuracy that grows as the search slows down."""
    from harness.evaluation.retrieval import make_setting

    rows = []
    for i, (label, qps) in enumerate(single_qps.items()):
        method, _, rest = label.partition("[")
        params = {k: int(v) for k, v in (p.split("=") for p in rest.rstrip("]").split(",") if p)}
        setting = make_setting(method, params)
        quality = 1.0 if method == "exact" else min(1.0, 0.5 + 1.0e3 / qps + 0.01 * i)
        rows.append({
            "method": method, "label": setting.label, "params": dict(setting.params), "mips": "native",
            "depth": 20, "n_items": n_items, "dim": 16, "build_seconds": 0.01 * i, "index_bytes": 2**20 + i,
            "recall": {"20": quality}, "latency_ms_p50": 1.0e3 / qps, "latency_ms_p95": 1.5e3 / qps,
            "single_qps": qps, "batch_qps": 2 * qps, "threads": 1,
            "metrics": {"HitRate@20": 0.4 * quality, "MRR@20": 0.2 * quality},
        })  # fmt: skip
    return rows


def default_like_store(out: Path, *, seeds: dict[str, int] | None = None, n_test: int = 60,
                       extra: dict[str, dict] | None = None) -> Path:
    """The 12 built-in labels (like the default suite), one seed each unless ``seeds`` says otherwise;
    gru4rec and srgnn with training curves; ``extra[label]`` is added to that label's manifests."""
    data = tiny_dataset(n_test=n_test, seed=0)
    for label in KNOWN_MODELS:
        for seed in range((seeds or {}).get(label, 1)):
            add_run(out, data, label, seed, with_curve=label in ("gru4rec", "srgnn"),
                    extra=(extra or {}).get(label))
    return out
