"""The shared base of neural models: device, threads, optimiser, training
state, scoring through embeddings.

Every torch model of sessionbench (GRU4Rec, NARM, STAMP, SASRec, BPR-MF,
FPMC, SR-GNN) and any plugin may build on these classes, so that each model
module holds only its network, its batching and its hyper-parameters::

    EpochTrainedRecommender        harness.models.training: the selection rule, curves, NaN-loss guard
      NeuralRecommender            this module: device, threads, Adam, cleanup, embeddings
        PrefixTrainedRecommender   this module: every training prefix -> next item, shuffled batches
          NARM, STAMP, SASRec, BPR-MF, FPMC, SR-GNN
        GRU4Rec                    session-parallel batches of its own

What :class:`NeuralRecommender` does for a model:

- ``fit`` checks the hyper-parameters (``_check_params``), resolves
  ``device`` to ``device_`` (:func:`harness.evaluation.timing.resolve_device`) and runs
  the selection rule with ``num_threads`` torch threads
  (:func:`harness.evaluation.timing.torch_threads`) and freed memory kept for reuse
  (:func:`harness.evaluation.timing.reuse_freed_memory`); afterwards every private instance
  attribute (a name starting with ``_``: optimiser, generators, training
  cases) is removed, whether fitting succeeded or not, and the network
  (``network_``) is left in eval mode.
- :func:`adam` builds Adam with the fused kernel where torch has it.
- ``_item_softmax_loss`` is the full-softmax training loss
  (:func:`item_softmax_cross_entropy`) of every model that has one; the
  FLOPs of its products over the training epochs' seconds become the
  run's ``softmax_gflops`` (:attr:`NeuralRecommender.timings_`). A model
  that writes its network's backward pass by hand (STAMP) takes the
  softmax's gradients from :func:`item_softmax_gradients`, counts them with
  ``_count_softmax_flops`` and hands its own gradients to autograd with
  :func:`loss_with_gradients`.
- ``score`` runs ``_score`` in inference mode, eval mode and with
  ``num_threads`` threads; by default the scores are
  ``session_embeddings(batch) @ item_embeddings().T``.

The embedding interface (``provides_embeddings = True``): every neural model
scores an item by an inner product, so

    session_embeddings(batch) -> float [B, d]
    item_embeddings()         -> float [n_items + 1, d]   (row 0: padding id)
    score(batch) == session_embeddings(batch) @ item_embeddings().T

(up to float rounding), which lets top-K be served by a nearest-neighbour
index over the item embeddings. ``embed`` is the same method as
``session_embeddings``.

This module lives in ``harness`` (not ``baselines``) because both
``baselines`` and ``srgnn`` build on it and a plugin may too; neither model
package imports the other.
"""

from __future__ import annotations

import abc
import copy
import logging
import math
import sys
import time
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from harness.data.dataset import PrefixBatch, SessionDataset
from harness.errors import ConfigError
from harness.models.plugin import NotFittedError
from harness.models.registry import Choice, Range
from harness.evaluation.timing import check_device_name, resolve_device, reuse_freed_memory, torch_threads
from harness.models.training import EpochTrainedRecommender

log = logging.getLogger(__name__)

#: progress lines logged per epoch (besides the epoch's own line)
PROGRESS_LINES_PER_EPOCH = 10


class EpochProgress:
    """Progress of one training epoch: a tqdm bar on a terminal, and about
    :data:`PROGRESS_LINES_PER_EPOCH` log lines (INFO, logger
    ``harness.models.neural``) with the running mean loss, the rate and the ETA,
    which reach the run's ``log.txt`` and ``-v`` output without a terminal.

    ``update(n, loss_sum, count)``: ``n`` more units done; ``loss_sum`` (a
    tensor or float) over ``count`` examples so far gives the running mean
    (read only when a line is logged, so the device is not synchronised on
    every batch)."""

    def __init__(self, label: str, epoch: int, total: int, unit: str) -> None:
        from tqdm import tqdm

        self.label, self.epoch, self.total, self.unit = label, epoch, max(int(total), 1), unit
        self.every = max(1, math.ceil(self.total / PROGRESS_LINES_PER_EPOCH))
        self.done, self.next_line, self.start = 0, self.every, time.perf_counter()
        self.bar = tqdm(total=total, desc=f"{label} epoch {epoch}", unit=unit, leave=False,
                        disable=not sys.stderr.isatty(), mininterval=0.5)

    def update(self, n: int, loss_sum: Any = None, count: int = 0) -> None:
        self.done += n
        self.bar.update(n)
        if self.done >= self.next_line and self.done < self.total and log.isEnabledFor(logging.INFO):
            self.next_line = (self.done // self.every + 1) * self.every
            elapsed = time.perf_counter() - self.start
            rate = self.done / elapsed if elapsed > 0 else float("inf")
            loss = float(loss_sum) / count if count else float("nan")
            log.info("%s epoch %d: %d/%d %s, loss %.4f, %.1f %s/s, ETA %.0f s", self.label, self.epoch, self.done,
                     self.total, self.unit, loss, rate, self.unit, (self.total - self.done) / rate)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """PyTorch's Adam, with the fused kernel (one call for all parameters,
    several times faster than the per-parameter loop on CPU, same update)
    where this torch and device have it."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # older torch or a device without the fused kernel
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def softmax_flops(rows: int, n_items: int, hidden: int) -> float:
    """FLOPs of the full-softmax products of ``rows`` training examples: the
    scores ([rows, hidden] x [hidden, n_items]) and their two gradient
    products (w.r.t. the session vectors and the item table), 2 FLOPs per
    multiply-add each: ``6 rows n_items hidden``. The padding column and an
    output bias add under 0.1% and are not counted."""
    return 6.0 * rows * n_items * hidden


#: ``precision`` of :func:`item_softmax_cross_entropy` -> the dtype of its
#: products' operands (None: the inputs' own)
_PRODUCT_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
SOFTMAX_PRECISIONS = tuple(_PRODUCT_DTYPES)

#: rows of the scores computed at a time by :func:`item_softmax_cross_entropy`:
#: a [128, N] block of scores is still in cache when its two gradient
#: products read it (STAMP's 512-row batch on 2,933 items: 20-25% faster per
#: batch than one [512, N] pass)
SOFTMAX_CHUNK_ROWS = 128


class SoftmaxGradients(NamedTuple):
    """What :func:`item_softmax_gradients` returns: the mean loss (a 0-d
    tensor) and its gradients w.r.t. the session vectors [B, d], the item
    table [N + 1, d] and the bias [N + 1] (None where not asked for)."""

    loss: torch.Tensor
    session: torch.Tensor | None
    table: torch.Tensor | None
    bias: torch.Tensor | None


def item_softmax_gradients(session: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                           bias: torch.Tensor | None = None, precision: str = "fp32", *,
                           wanted: tuple[bool, bool, bool] = (True, True, True)) -> SoftmaxGradients:
    """The loss of :func:`item_softmax_cross_entropy` and its gradients,
    computed together without autograd (call it with gradients off).

    ``SOFTMAX_CHUNK_ROWS`` rows at a time: each block of probabilities (one
    pass of ``exp``) is turned into its own gradient in place and multiplied
    into the session and table gradients while it is in cache (the products
    apply the mean's weight 1/B themselves, so it costs no pass of its own),
    so no ``[B, N]`` array outlives its block. ``wanted`` says which of the
    session, table and bias gradients to compute (a product is skipped for
    one not wanted; the bias gradient only where there is a bias).
    """
    if precision not in _PRODUCT_DTYPES:
        raise ValueError(f"precision must be one of {SOFTMAX_PRECISIONS}, got {precision!r}")
    n_rows = len(targets)
    losses = session.new_empty(n_rows)
    grad_session = torch.empty_like(session) if wanted[0] else None
    grad_table = torch.empty_like(table) if wanted[1] else None
    grad_bias = torch.zeros_like(bias) if bias is not None and wanted[2] else None
    weight = 1.0 / n_rows  # of each row in the mean
    # the products' operands, rounded once per call when asked for
    low = _PRODUCT_DTYPES[precision]
    session_op, table_op = (session, table) if low is None else (session.to(low), table.to(low))
    for start in range(0, n_rows, SOFTMAX_CHUNK_ROWS):
        rows = slice(start, start + SOFTMAX_CHUNK_ROWS)
        gradient = _softmax_block(session_op[rows], table_op, bias, targets[rows], losses[rows])
        if grad_bias is not None:
            grad_bias.add_(gradient.sum(dim=0), alpha=weight)
        scale = weight
        if low is not None:  # weighted before it is rounded
            gradient, scale = gradient.mul_(weight).to(low), 1.0
        if grad_session is not None:
            _product_into(grad_session[rows], gradient, table_op, scale)
        if grad_table is not None:  # summed over the blocks
            _product_into(grad_table, gradient.T, session_op[rows], scale, accumulate=start > 0)
    return SoftmaxGradients(losses.mean(), grad_session, grad_table, grad_bias)


class _LossWithGradients(torch.autograd.Function):
    """See :func:`loss_with_gradients`."""

    @staticmethod
    def forward(ctx, compute, *inputs: torch.Tensor) -> torch.Tensor:
        loss, grads = compute(ctx.needs_input_grad[1:])
        # on ctx, not saved for backward: handed to autograd without a copy (see backward)
        ctx.grads = grads
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        grads = ctx.__dict__.pop("grads", None)
        if grads is None:
            raise RuntimeError("this loss's gradients were computed with it and handed out by its first "
                               "backward; compute the loss again to take its gradients again")
        # a gradient no one else holds becomes the parameter's .grad as it is
        # (autograd copies one that is still referenced); d loss = 1, the usual
        # case, needs no multiplication (checked on CPU only: no device sync)
        if not (grad_loss.device.type == "cpu" and float(grad_loss) == 1.0):
            grads = [None if grad is None else grad * grad_loss for grad in grads]
        return (None, *grads)


def loss_with_gradients(compute, *inputs: torch.Tensor) -> torch.Tensor:
    """A scalar loss whose gradients are computed together with it, by hand.

    ``compute(wanted)`` runs with gradients off and returns ``(loss,
    grads)``: the 0-d loss and, for each of ``inputs``, its gradient (a
    tensor of the input's shape, or None where ``wanted[i]`` is false).
    The result is a loss that autograd differentiates like any other:
    ``backward()`` gives each input ``grads[i]`` times the incoming gradient.
    Computing the gradients in the forward pass lets them share work with
    the loss (see :func:`item_softmax_gradients`) and skips autograd's
    bookkeeping; the gradients can be taken once (a second ``backward``
    through the same loss raises).
    """
    return _LossWithGradients.apply(compute, *inputs)


def _product_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, weight: float,
                  accumulate: bool = False) -> None:
    """``out = weight a @ b`` (or ``out += weight a @ b``); a product of
    reduced-precision operands is rounded to their dtype before it is
    weighted and stored in ``out``'s."""
    if a.dtype != out.dtype:
        product = a @ b
        if accumulate:
            out.add_(product, alpha=weight)
        else:
            torch.mul(product, weight, out=out)
    else:  # beta = 0: out's old contents are ignored, not multiplied
        torch.addmm(out, a, b, beta=1.0 if accumulate else 0.0, alpha=weight, out=out)


def _softmax_block(session: torch.Tensor, table: torch.Tensor, bias: torch.Tensor | None,
                   targets: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """One block of rows: writes their losses into ``losses`` [b] and returns
    d loss_b / d score_bj = p_bj - [j = target_b], [b, N + 1]."""
    if session.dtype != losses.dtype:  # reduced-precision operands: the softmax in the loss's precision
        scores = (session @ table.T).to(losses.dtype)
        if bias is not None:
            scores += bias
    elif bias is None:
        scores = session @ table.T
    else:  # the bias added inside the product (one pass over the scores)
        scores = torch.addmm(bias, session, table.T)
    scores[:, 0] = float("-inf")  # padding: probability 0, so row 0 of the table gets no gradient
    gradient = torch.softmax(scores, dim=1)  # one pass of exp over the scores
    rows = torch.arange(len(targets), device=scores.device)
    target_probability = gradient[rows, targets]  # [b]
    losses.copy_(target_probability.log().neg_())
    underflow = target_probability == 0  # a target scored 87+ below the best: -log p from the scores
    if bool(underflow.any()):
        losses[underflow] = (torch.logsumexp(scores[underflow], dim=1)
                             - scores[rows[underflow], targets[underflow]])
    gradient[rows, targets] -= 1.0
    return gradient


def item_softmax_cross_entropy(session: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                               bias: torch.Tensor | None = None, precision: str = "fp32") -> torch.Tensor:
    """The full-softmax training loss of the embedding models.

    ``session`` float [B, d], ``table`` float [N + 1, d] (row 0: the padding
    id, never a target), ``targets`` long [B] in 1..N, optional ``bias``
    float [N + 1] (GRU4Rec's output bias ``b``)::

        score_bj = s_b . e_j + b_j
        loss = mean_b ( log sum_{j=1..N} exp(score_bj) - score_{b,target_b} )

    equal (up to float rounding) to
    ``F.cross_entropy(session @ table[1:].T + bias[1:], targets - 1)``, with
    the same gradients (row 0 of the table and of the bias get 0), in about
    half the memory traffic outside the two gradient products.

    ``precision="bf16"`` runs the three products (the scores and the two
    gradient products) on bfloat16 copies of ``session``, ``table`` and the
    score gradient: each product accumulates in float32 and rounds its
    result to bfloat16 (8 significant bits), while the softmax, the loss and
    the summed gradients stay in the inputs' precision. On CPUs with
    AVX512-BF16 or AMX and on GPUs these products run several times faster;
    on others bfloat16 is emulated and slower. ``"fp32"`` (default): every
    product in the inputs' precision.
    """

    def compute(wanted):  # item_softmax_gradients checks the precision
        result = item_softmax_gradients(session, table, targets, bias, precision, wanted=wanted)
        return result.loss, (result.session, result.table, result.bias)[: len(inputs)]

    inputs = (session, table) if bias is None else (session, table, bias)
    return loss_with_gradients(compute, *inputs)


class _Tanh(torch.autograd.Function):
    """tanh through the sigmoid; see :func:`tanh`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad (1 - y^2), as tanh's own backward


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x) = 2 sigmoid(2x) - 1``, within 2e-7 of ``torch.tanh`` (an
    absolute error: the rounding of the sigmoid near 1/2), with the same
    gradient formula ``1 - tanh(x)^2``.

    Why not ``torch.tanh``: on CPU (torch 2.13, with AVX2 and with AVX-512
    kernels alike) it took 131 us on a [512, 100] float32 tensor where these
    three operations take 41 (torch's sigmoid alone: 22); STAMP applies it
    twice a batch."""
    return _Tanh.apply(x)


def dropout(x: torch.Tensor, p: float, training: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout: each element kept with probability ``1 - p`` and
    divided by ``1 - p``, so ``E[dropout(x)] = x``; identity when not
    training or ``p = 0``.

    The mask is one ``torch.rand`` draw from ``generator`` (default: torch's
    global generator, which ``fit`` seeds, as ``torch.nn.Dropout`` uses),
    compared in place: on CPU that is about twice as fast as torch's
    per-element ``bernoulli_``, which took 17% of SASRec's epoch, and as a
    boolean mask multiplied in. The masks differ from torch's draw for draw.
    """
    if not training or p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype).ge_(p)  # 1.0 or 0.0
    return (x * keep).div_(1.0 - p)


class Dropout(torch.nn.Module):
    """:func:`dropout` as a module, in place of ``torch.nn.Dropout(p)``
    (active in training mode only)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class NeuralRecommender(EpochTrainedRecommender):
    """Base class of torch models trained by epochs under the selection rule.

    A subclass's ``__init__`` stores (at least) ``epochs``, ``patience``,
    ``refit``, ``device`` and ``num_threads``, and a model trained by the
    full softmax (:meth:`_item_softmax_loss`) also ``softmax_precision``
    (``"fp32"``, default, or ``"bf16"``: the precision of the loss's
    products, see :func:`item_softmax_cross_entropy`; scores are float32); it implements
    ``_check_params()``, ``_start_training`` / ``_train_epoch`` (see
    :class:`~harness.models.training.EpochTrainedRecommender`, or use
    :class:`PrefixTrainedRecommender`), and ``_session_embeddings(batch)``
    and ``_item_embeddings()`` on the fitted ``network_``.

    Fitted attributes: ``network_`` (the ``torch.nn.Module``), ``device_``,
    and those of the base classes. Private attributes (``_name``) are
    training-only and are dropped at the end of ``fit``.
    """

    uses_gpu: ClassVar[bool] = True
    provides_embeddings: ClassVar[bool] = True
    #: checked when a suite or --param sets them; subclasses add their own
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        "num_threads": Range(0), "softmax_precision": Choice(SOFTMAX_PRECISIONS),  # the latter where a model has it
    }

    # -- hyper-parameter checks -----------------------------------------------

    def _check_params(self) -> None:
        """Raise :class:`ConfigError` naming a bad hyper-parameter (subclasses
        extend this; the base checks ``num_threads``, the form of ``device``
        and, where the model has it, ``softmax_precision``). It reads the
        hyper-parameters only, so a suite runs it where it is loaded
        (:func:`harness.models.registry.check_params_together`), before any run starts."""
        self._check_int("num_threads", minimum=0)
        if hasattr(self, "device"):
            check_device_name(self.device, self.name or type(self).__name__)
        if hasattr(self, "softmax_precision"):
            self._check_choice("softmax_precision", SOFTMAX_PRECISIONS)

    def _bad(self, what: str) -> ConfigError:
        return ConfigError(f"{self.name or type(self).__name__}: {what}")

    def _check_int(self, name: str, minimum: int = 1) -> None:
        """``self.<name>`` must be an integer (not a bool) >= ``minimum``."""
        value = getattr(self, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self._bad(f"{name} must be {wanted}, got {value!r}")

    def _check_number(self, name: str, ok, wanted: str) -> None:
        """``self.<name>`` must be a number (YAML reads ``1e-3`` as a string,
        so numeric strings count) for which ``ok(number)`` holds; ``wanted``
        phrases the rule ("a number > 0")."""
        value = getattr(self, name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not ok(number):
            raise self._bad(f"{name} must be {wanted}, got {value!r}")

    def _check_bool(self, name: str) -> None:
        if not isinstance(getattr(self, name), bool):
            raise self._bad(f"{name} must be true or false, got {getattr(self, name)!r}")

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        if getattr(self, name) not in choices:
            raise self._bad(f"{name} must be one of {choices}, got {getattr(self, name)!r}")

    # -- fitting ----------------------------------------------------------------

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        self._check_params()
        self.device_ = resolve_device(self.device, self.name or type(self).__name__)
        vars(self).pop("softmax_work_", None)  # this fit's epochs only
        try:
            with torch_threads(int(self.num_threads)), reuse_freed_memory():
                super()._fit(data, seed=seed)
        finally:  # training-only state is not part of the fitted model
            self._drop_training_state()
        self.network_.eval()

    # -- the full softmax's share of the work ------------------------------------

    def _item_softmax_loss(self, session: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                           bias: torch.Tensor | None = None) -> torch.Tensor:
        """:func:`item_softmax_cross_entropy` for a training step, its
        products' FLOPs (:func:`softmax_flops`) counted towards the epoch's
        ``softmax_gflops`` (:attr:`timings_`). Every full-softmax model's
        training loss goes through here; its products run in the model's
        ``softmax_precision`` (``"fp32"`` when it has none)."""
        self._count_softmax_flops(len(targets), table)
        return item_softmax_cross_entropy(session, table, targets, bias, getattr(self, "softmax_precision", "fp32"))

    def _count_softmax_flops(self, rows: int, table: torch.Tensor) -> None:
        """Count a step's full-softmax products (``rows`` examples over
        ``table`` [N + 1, d]) towards the epoch's ``softmax_gflops``; for a
        model that computes its softmax gradients itself
        (:func:`item_softmax_gradients`) instead of through
        :meth:`_item_softmax_loss`."""
        n_items, hidden = table.shape[0] - 1, table.shape[1]
        self._epoch_softmax_flops = getattr(self, "_epoch_softmax_flops", 0.0) + softmax_flops(rows, n_items, hidden)

    def _timed_epoch(self, epoch: int) -> tuple[float, float]:
        """The base's timed epoch; when its steps went through
        :meth:`_item_softmax_loss`, their FLOPs and the epoch's seconds are
        added to ``softmax_work_``."""
        self._epoch_softmax_flops = 0.0
        loss, seconds = super()._timed_epoch(epoch)
        if self._epoch_softmax_flops > 0:
            flops, total = getattr(self, "softmax_work_", (0.0, 0.0))
            self.softmax_work_ = [flops + self._epoch_softmax_flops, total + seconds]
        return loss, seconds

    @property
    def timings_(self) -> dict[str, Any]:
        """Timings the runner adds to the run's: ``softmax_gflops``, the
        FLOPs of the full-softmax products of all training epochs
        (``softmax_work_[0]``, :func:`softmax_flops` of every step) divided by
        those epochs' seconds (``softmax_work_[1]``); empty for a model
        trained without a full softmax. An epoch does more than these
        products (the network, the optimiser, the softmax itself), so this
        is a lower bound of the GEMM rate achieved in them; compare it with
        the machine's GEMM rate (tests/benchmarks/test_bench_gemm.py)."""
        flops, seconds = getattr(self, "softmax_work_", (0.0, 0.0))
        return {"softmax_gflops": flops / seconds / 1e9} if seconds > 0 else {}

    def _after_load(self) -> None:
        self.device_ = torch.device("cpu")  # load() maps every tensor to the CPU
        self.network_.eval()

    def _drop_training_state(self) -> None:
        for name in [k for k in vars(self) if k.startswith("_") and not k.startswith("__")]:
            del self.__dict__[name]

    def _progress(self, total: int, epoch: int, unit: str) -> EpochProgress:
        """The epoch's progress: a bar on a terminal, log lines everywhere."""
        return EpochProgress(self._label(), epoch, total, unit)

    # -- checkpoints ------------------------------------------------------------

    #: private attributes that change during training and are saved as they are
    #: in checkpoints (besides network, optimisers, schedulers and generators)
    checkpoint_attributes: ClassVar[tuple[str, ...]] = ()

    def _training_state(self) -> dict[str, Any]:
        """The network's, every optimiser's and scheduler's state dicts, every
        ``torch.Generator``'s state, the fitted attributes besides the
        network (``epoch_lrs_``) and :attr:`checkpoint_attributes`."""
        state: dict[str, Any] = {"network_": self.network_.state_dict(), "objects": {}, "generators": {},
                                 "fitted": {}, "extra": {}}
        for name, value in vars(self).items():
            if isinstance(value, torch.Generator):
                state["generators"][name] = value.get_state()
            elif isinstance(value, (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)):
                state["objects"][name] = value.state_dict()
            elif name.endswith("_") and not name.startswith("_") and name not in ("network_", "device_"):
                state["fitted"][name] = copy.deepcopy(value)
        for name in self.checkpoint_attributes:
            state["extra"][name] = copy.deepcopy(getattr(self, name))
        return state

    def _load_training_state(self, state: dict[str, Any]) -> None:
        self.network_.load_state_dict(state["network_"])
        for name, value in state["objects"].items():
            getattr(self, name).load_state_dict(value)
        for name, value in state["generators"].items():
            getattr(self, name).set_state(value)
        vars(self).update(state["fitted"])
        vars(self).update(state["extra"])

    # -- embeddings and scores ----------------------------------------------------

    @abc.abstractmethod
    def _session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        """float [B, d] for a batch already on ``device_`` (inference mode, eval mode)."""

    @abc.abstractmethod
    def _item_embeddings(self) -> torch.Tensor:
        """float [n_items + 1, d], row i the vector of item i (row 0: padding)."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError(f"{self._label()}: call fit() before asking for embeddings")

    def session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        """float [B, d]: each prefix's session vector; ``score(batch)`` equals
        ``session_embeddings(batch) @ item_embeddings().T``."""
        self._check_fitted()
        self._check_batch(batch)
        self.network_.eval()
        with torch.inference_mode(), torch_threads(int(self.num_threads)):
            return self._session_embeddings(batch.to(self.device_))

    embed = session_embeddings

    def item_embeddings(self) -> torch.Tensor:
        """float [n_items + 1, d]: the vector of every item id (row 0: padding,
        never recommended), a copy detached from the network."""
        self._check_fitted()
        with torch.no_grad():  # not inference mode: the copy is an ordinary tensor the caller may change
            return self._item_embeddings().detach().clone()

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        """float [B, n_items + 1]: ``session_embeddings @ item_embeddings().T``."""
        self.network_.eval()
        with torch.inference_mode(), torch_threads(int(self.num_threads)):
            return self._scores(batch.to(self.device_))

    def _scores(self, batch: PrefixBatch) -> torch.Tensor:
        """Scores of a batch on ``device_``; override only for a faster,
        equal computation."""
        return self._session_embeddings(batch) @ self._item_embeddings().T


class PrefixTrainedRecommender(NeuralRecommender):
    """A neural model trained on every prefix of the training split.

    Each prefix ``[i1..it]`` of a training session, with its next item
    ``i(t+1)`` as target, is one example (the data augmentation of the
    SR-GNN, NARM and STAMP papers); every epoch shuffles the examples with a
    generator seeded from ``seed`` and takes mini-batches of ``batch_size``
    (the last one smaller). The epoch's loss is the mean of the batch losses.

    A subclass stores ``batch_size`` and implements:

    - ``_build_network(generator) -> nn.Module``: a freshly initialised
      network for ``n_items_`` items, drawing its initial weights from
      ``generator`` (the same generator then shuffles every epoch);
    - ``_make_optimizer(params)`` (default: Adam with ``lr`` and ``l2`` if
      the model has them) and optionally ``_make_scheduler(optimizer)``
      (default: none; stepped after every epoch);
    - ``_batch_loss(batch, targets) -> scalar tensor``: ``batch`` is the
      :class:`PrefixBatch` on ``device_``, ``targets`` LongTensor [B].

    Fitted attribute ``epoch_lrs_``: the learning rate of each epoch of the
    last training run.
    """

    #: the ranges every prefix-trained model shares (subclasses add their own)
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "batch_size": Range(1), "lr": Range(0, low_open=True), "l2": Range(0),
    }

    @abc.abstractmethod
    def _build_network(self, generator: torch.Generator) -> torch.nn.Module:
        """A freshly initialised network (weights drawn from ``generator``)."""

    @abc.abstractmethod
    def _batch_loss(self, batch: PrefixBatch, targets: torch.Tensor) -> torch.Tensor:
        """The mean training loss of one mini-batch (a scalar with gradients)."""

    def _make_optimizer(self, params) -> torch.optim.Optimizer:
        return adam(params, lr=float(self.lr), weight_decay=float(getattr(self, "l2", 0.0)))

    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        return None

    def _start_training(self, data: SessionDataset, split: str, seed: int) -> None:
        """A freshly initialised network and optimiser for ``data.split(split)``.

        One ``torch.Generator`` seeded with ``seed`` draws the initial weights
        and then every epoch's shuffle, so training is deterministic on CPU.
        """
        self._generator = torch.Generator().manual_seed(int(seed))
        self.network_ = self._build_network(self._generator).to(self.device_)
        self._optimizer = self._make_optimizer(self.network_.parameters())
        self._scheduler = self._make_scheduler(self._optimizer)
        self.epoch_lrs_: list[float] = []
        self._cases = data.split(split).prefixes()
        if len(self._cases) == 0:
            raise ConfigError(f"{self.name}: the {split!r} split has no prefixes to train on")

    def _train_epoch(self, epoch: int) -> float:
        """One shuffled pass over the training prefixes; returns the mean batch loss."""
        cases, network, optimizer = self._cases, self.network_, self._optimizer
        self.epoch_lrs_.append(float(optimizer.param_groups[0]["lr"]))
        order = torch.randperm(len(cases), generator=self._generator).numpy()
        batch_size = int(self.batch_size)
        starts = range(0, len(order), batch_size)
        network.train()
        total = torch.zeros((), device=self.device_)
        with self._progress(len(starts), epoch, "batch") as bar:
            for done, start in enumerate(starts, 1):
                index = order[start : start + batch_size]
                batch = cases.batch(index, with_times=False).to(self.device_)
                targets = cases.next_items(index).to(self.device_)
                loss = self._batch_loss(batch, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()
                bar.update(1, total, done)
        network.eval()
        if self._scheduler is not None:
            self._scheduler.step()  # after the epoch
        return float(total) / len(starts)
