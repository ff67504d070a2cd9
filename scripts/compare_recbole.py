"""Train RecBole's NARM, STAMP and SASRec on a sessionbench dataset and score
them with sessionbench's own metric code, with RecBole's epoch times.

RecBole needs its own environment (it pins older libraries); sessionbench is
installed into the same one so that this script can use its data pipeline
and evaluator::

    python3 -m venv /tmp/recbole-venv
    /tmp/recbole-venv/bin/pip install torch==2.13.0
    /tmp/recbole-venv/bin/pip install recbole==1.2.1 "numpy<2" "pandas==2.1.4" "pyarrow<20" -e .

(RecBole 1.2.1 fails in its id remapping with pandas 3 -- "Length of values
(1) does not match length of index" -- and pyarrow >= 20 needs numpy 2.)
    /tmp/recbole-venv/bin/python scripts/compare_recbole.py --dataset yoochoose-100k \\
        --data-dir PATH/TO/yoochoose-100k --models narm:10,stamp:10,sasrec:10 --work /tmp/recbole-work

``MODEL:EPOCHS`` trains RecBole's model for exactly that many epochs on
sessionbench's whole ``train`` split (every prefix -> next item, the same
examples sessionbench's prefix models train on), with the settings of
:data:`MATCHED` (those of sessionbench's defaults for the model); the
number of epochs is meant to be the one sessionbench's selection rule chose
(``best_epoch`` from scripts/compare_neural.py), so both are trained alike.
RecBole's validation is switched off. The trained network then scores every
test prefix of sessionbench's split through a
:class:`~harness.models.plugin.SessionRecommender` adapter, so HitRate@20 and
MRR@20 come from ``harness.evaluation.evaluate`` exactly as for sessionbench's models.

Epoch times: wall-clock seconds and the CPU seconds of the process (which
depend much less on what else runs on the machine), each epoch timed alone,
without data preparation or scoring.

RecBole's BPR and FPMC are not run: they key a session's representation on
its user id, and every test session is a user never seen in training, so
they cannot be scored on session prefixes without changing the models.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness.data.dataset import PrefixBatch, SessionDataset
from harness.evaluation.evaluate import evaluate
from harness.models.plugin import SessionRecommender
from harness.data.specs import load_dataset

#: RecBole settings matched to sessionbench's defaults of the same model
MATCHED: dict[str, dict] = {
    "narm": {"model": "NARM", "embedding_size": 50, "hidden_size": 100, "n_layers": 1,
             "dropout_probs": [0.25, 0.5], "learning_rate": 1e-3, "train_batch_size": 512},
    "stamp": {"model": "STAMP", "embedding_size": 100, "learning_rate": 5e-3, "train_batch_size": 512},
    "sasrec": {"model": "SASRec", "n_layers": 2, "n_heads": 1, "hidden_size": 50, "inner_size": 50,
               "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "hidden_act": "relu",
               "layer_norm_eps": 1e-8, "initializer_range": 0.02, "learning_rate": 1e-3,
               "train_batch_size": 128},
}
MAX_LEN = 50


def write_benchmark(data: SessionDataset, folder: Path, name: str) -> None:
    """RecBole's session benchmark files: one row per prefix (its last
    ``MAX_LEN`` items) with the next item; ``train`` holds sessionbench's
    train split, ``valid`` and ``test`` its valid split (RecBole's own
    evaluation is not used)."""
    folder.mkdir(parents=True, exist_ok=True)

    def rows(split_name: str) -> list[str]:
        cases = data.split(split_name).prefixes()
        batch = cases.batch(slice(0, len(cases)), with_times=False)
        targets = cases.next_items(slice(0, len(cases))).numpy()
        items, lengths = batch.items.numpy(), batch.lengths.numpy()
        out = []
        for row in range(len(lengths)):
            prefix = items[row, max(0, lengths[row] - MAX_LEN) : lengths[row]]
            out.append(f"{row}\t{' '.join(map(str, prefix))}\t{targets[row]}")
        return out

    header = "session_id:token\titem_id_list:token_seq\titem_id:token"
    for suffix, split_name in (("train", "train"), ("valid", "valid"), ("test", "valid")):
        lines = rows(split_name)
        if suffix != "train":  # distinct session ids per file
            lines = [f"{suffix}{line}" for line in lines]
        (folder / f"{name}.{suffix}.inter").write_text("\n".join([header, *lines]) + "\n")


class RecBoleScores(SessionRecommender):
    """A trained RecBole sequential model seen through sessionbench's plugin API.

    ``score`` maps each prefix's sessionbench item ids to RecBole's internal
    ids, calls RecBole's ``full_sort_predict`` and maps the columns back
    (items RecBole never saw get the row's lowest score).
    """

    def __init__(self, *, recbole_model=None, dataset=None, n_items: int = 0) -> None:
        self.recbole_model = recbole_model
        self.dataset = dataset
        self.n_items = n_items

    def _fit(self, data, *, seed):  # already trained by RecBole
        field = self.dataset.iid_field
        to_internal = np.zeros(self.n_items + 1, dtype=np.int64)  # 0: RecBole's padding id
        for item in range(1, self.n_items + 1):
            token = str(item)
            if token in self.dataset.field2token_id[field]:
                to_internal[item] = self.dataset.field2token_id[field][token]
        self.to_internal_ = torch.from_numpy(to_internal)

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        from recbole.data.interaction import Interaction

        model = self.recbole_model
        items = self.to_internal_[batch.items].masked_fill(batch.items == 0, 0)
        lengths = batch.lengths
        if items.shape[1] > MAX_LEN:  # the last MAX_LEN clicks, left-aligned
            keep = lengths.clamp(max=MAX_LEN)
            index = ((lengths - keep).unsqueeze(1) + torch.arange(MAX_LEN)).clamp(max=items.shape[1] - 1)
            items = items.gather(1, index).masked_fill(torch.arange(MAX_LEN) >= keep.unsqueeze(1), 0)
            lengths = keep
        interaction = Interaction({model.ITEM_SEQ: items, model.ITEM_SEQ_LEN: lengths})
        with torch.no_grad():
            internal = model.full_sort_predict(interaction.to(model.device)).cpu().float()
        internal = internal.view(len(batch), -1)
        scores = internal[:, self.to_internal_]
        unseen = self.to_internal_ == 0
        scores[:, unseen] = internal.min(dim=1, keepdim=True).values - 1.0
        return scores


class _PaddingMaskedLoss(torch.nn.Module):
    """RecBole's cross-entropy with the padding id's logit (column 0) set to
    -inf, so that its softmax runs over the real items only."""

    def __init__(self, loss: torch.nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(logits.index_fill(1, logits.new_zeros(1, dtype=torch.long), float("-inf")), targets)


def train_recbole(key: str, epochs: int, work: Path, name: str, seed: int, zero_padding_row: bool = False,
                  mask_padding_logit: bool = False):
    """Train one RecBole model; returns (model, dataset, wall-clock seconds per
    epoch, CPU seconds of this process per epoch).

    ``zero_padding_row`` (a diagnostic, not RecBole's behaviour): set the
    item embedding's padding row to zero after RecBole's initialisation.
    RecBole draws that row like every other (non-zero) and never trains it,
    so in models that sum or attend over the padded positions (STAMP's
    session mean over 50 positions, for one) it adds a fixed vector scaled
    by the number of padded positions: a signal of the prefix's length that
    a model computing on the real clicks only does not have.

    ``mask_padding_logit`` (a diagnostic too): RecBole's cross-entropy runs
    over every item id, the padding id 0 included (its logit is the session
    vector times the padding row: 0 when that row is zero, an extra term
    ``exp(0)`` in every softmax's denominator); this leaves it out, as
    sessionbench's softmax over items 1..N does."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    settings = dict(MATCHED[key])
    model_name = settings.pop("model")
    config = Config(model=model_name, dataset=name, config_dict={
        **settings, "data_path": str(work), "checkpoint_dir": str(work / "saved"),
        "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id", "load_col": None,
        "benchmark_filename": ["train", "valid", "test"], "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": MAX_LEN, "loss_type": "CE", "train_neg_sample_args": None,
        "epochs": epochs, "eval_step": epochs + 1, "stopping_step": epochs + 1, "seed": seed,
        "reproducibility": True, "use_gpu": torch.cuda.is_available(), "show_progress": False,
        "topk": [20], "metrics": ["Hit", "MRR"], "valid_metric": "MRR@20", "state": "WARNING",
    })
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    if zero_padding_row:
        with torch.no_grad():
            model.item_embedding.weight[0].zero_()  # padding_idx=0: it stays zero while training
    if mask_padding_logit:
        model.loss_fct = _PaddingMaskedLoss(model.loss_fct)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    seconds, cpu_seconds = [], []
    for epoch in range(epochs):  # RecBole's own epoch routine, timed one by one
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    model.eval()
    return model, dataset, float(np.mean(seconds)), float(np.mean(cpu_seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--models", default="narm:10,stamp:10,sasrec:10", help="MODEL:EPOCHS,...")
    parser.add_argument("--work", type=Path, default=Path("recbole-work"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--zero-padding-row", action="store_true",
                        help="diagnostic: zero the item embedding's padding row after RecBole's initialisation")
    parser.add_argument("--mask-padding-logit", action="store_true",
                        help="diagnostic: leave the padding id out of RecBole's training softmax")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    name = "sessionbench"
    write_benchmark(data, args.work / name, name)
    rows = []
    print("| RecBole model | epochs | HitRate@20 | MRR@20 | s / epoch | CPU s / epoch |")
    print("|---|---|---|---|---|---|")
    for spec in args.models.split(","):
        key, _, epochs = spec.partition(":")
        model, dataset, per_epoch, cpu_per_epoch = train_recbole(key, int(epochs or 10), args.work, name, args.seed,
                                                                 args.zero_padding_row, args.mask_padding_logit)
        adapter = RecBoleScores(recbole_model=model, dataset=dataset, n_items=data.n_items).fit(data, seed=args.seed)
        metrics = evaluate(adapter, data, ks=(20,)).metrics()
        row = {"model": key, "epochs": int(epochs or 10), "HitRate@20": metrics["HitRate@20"],
               "MRR@20": metrics["MRR@20"], "seconds_per_epoch": per_epoch, "cpu_seconds_per_epoch": cpu_per_epoch}
        rows.append(row)
        print(f"| {key} | {row['epochs']} | {row['HitRate@20']:.4f} | {row['MRR@20']:.4f} | {per_epoch:.2f} | "
              f"{cpu_per_epoch:.2f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
