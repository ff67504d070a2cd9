"""Approximate nearest-neighbour (ANN) retrieval of a model's top-K, measured
against exact ranking.

A model that declares ``provides_embeddings`` scores item ``i`` for a prefix
as an inner product, ``score = session_embeddings(batch) @ item_embeddings().T``,
so its top-K is a maximum-inner-product search (MIPS) over the item vectors
and can be served by an index. :class:`Retrieval` builds such an index from
``item_embeddings()[1:]`` (the padding row 0 is never indexed, so item 0 is
never retrieved) and is handed to :func:`harness.evaluation.evaluate.evaluate`, which
then ranks only the retrieved items (see :meth:`Retrieval.rank_batch`).

Methods and how each serves inner products
------------------------------------------
=============  ===========================================  ===============================
method         index                                        inner product (MIPS) path
=============  ===========================================  ===============================
exact          brute force, ``torch`` matmul + top-k         native
faiss-flat     ``faiss.IndexFlatIP`` (brute force)          native (METRIC_INNER_PRODUCT)
faiss-hnsw     ``faiss.IndexHNSWFlat`` (graph)              native (METRIC_INNER_PRODUCT)
faiss-ivf      ``faiss.IndexIVFFlat`` (inverted file)       norm augmentation, then L2
faiss-ivfpq    ``faiss.IndexIVFPQ`` (IVF + product quant.)  norm augmentation, then L2
faiss-lsh      ``faiss.IndexLSH`` (random hyperplanes)      norm augmentation, then angle
annoy          ``annoy.AnnoyIndex`` (random-projection      native (``'dot'``; annoy
               trees)                                       augments internally)
=============  ===========================================  ===============================

Norm augmentation (:func:`augment_items`, :func:`augment_queries`): with
``M = max_i ||x_i||``, items become ``x' = [x, sqrt(M^2 - ||x||^2)]`` (all of
norm M) and queries ``q' = [q, 0]``. Then ``||q' - x'||^2 = ||q||^2 + M^2 -
2 q.x`` and ``cos(q', x') = q.x / (||q|| M)``: for a fixed query both orders
are the inner-product order, so an exact L2 or angular search over the
augmented vectors is an exact MIPS.

Parameters (:data:`PARAMETERS`; defaults in brackets): faiss-hnsw ``M`` [32],
``efConstruction`` [40], ``efSearch`` [64]; faiss-ivf ``nlist`` [0: auto,
``min(4 sqrt(n), n / 39)``], ``nprobe`` [8]; faiss-ivfpq the same plus ``m``
[0: auto, one sub-quantiser per 4 dimensions] and ``nbits`` [8]; faiss-lsh
``nbits`` [256]; annoy ``n_trees`` [50], ``search_k`` [-1: annoy's default
``n_trees * k``]. Every method also takes ``rerank`` [1]: ask the index for
``rerank * k`` candidates and keep the ``k`` best by exact inner product
(a refinement step, counted in the measured latency).

faiss and annoy are optional (``pip install sessionbench[ann]``) and imported
only when an index of theirs is built.
"""

from __future__ import annotations

import abc
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from harness.errors import ConfigError, ContractError, describe, quote
from harness.evaluation.metrics import DEFAULT_KS, UNRANKED, rank_and_top
from harness.evaluation.timing import torch_threads
from harness.limits import MAX_GRID_POINTS

#: Tunable parameters of each method and their defaults (``rerank`` is common to all).
PARAMETERS: dict[str, dict[str, int]] = {
    "exact": {},
    "faiss-flat": {},
    "faiss-hnsw": {"M": 32, "efConstruction": 40, "efSearch": 64},
    "faiss-ivf": {"nlist": 0, "nprobe": 8},
    "faiss-ivfpq": {"nlist": 0, "nprobe": 8, "m": 0, "nbits": 8},
    "faiss-lsh": {"nbits": 256},
    "annoy": {"n_trees": 50, "search_k": -1},
}
METHODS: tuple[str, ...] = tuple(PARAMETERS)
COMMON_PARAMETERS: dict[str, int] = {"rerank": 1}
#: Parameters that may be -1 (annoy's "use the default").
_MAY_BE_NEGATIVE = {"search_k"}
#: Parameters that may be 0 (meaning "choose from the catalogue size").
_MAY_BE_ZERO = {"nlist", "m"}
#: The largest value of any parameter: faiss and annoy take each as a C ``int``.
_MAX_VALUE = 2**31 - 1
#: Narrower bounds where faiss or annoy crashes, refuses, hangs or exhausts
#: memory outside them: an HNSW graph of M = 1 segfaults and one of M = 2**31 - 1
#: throws from a vector allocation (each item keeps 2 M neighbour slots, so
#: M = 1024 already costs 8 KB an item); an HNSW search or build keeps a
#: candidate list of efSearch / efConstruction entries, which at 2**31 - 1
#: runs for hours and eats memory; IVF-PQ codes take at most 24 bits; an LSH
#: code of millions of bits cannot be allocated; every annoy tree holds about
#: a node per item, so n_trees = 2**31 - 1 grows without end (and annoy's
#: build ignores SIGTERM). The published settings sit far inside these (M
#: 4..64, ef up to a few thousand, n_trees 10..1000).
_BOUNDS: dict[tuple[str, str], tuple[int, int]] = {
    ("faiss-hnsw", "M"): (2, 1024),
    ("faiss-hnsw", "efConstruction"): (1, 100_000),
    ("faiss-hnsw", "efSearch"): (1, 100_000),
    ("faiss-ivfpq", "nbits"): (1, 24),
    ("faiss-lsh", "nbits"): (1, 16_384),
    ("annoy", "n_trees"): (1, 10_000),
}


# --------------------------------------------------------------------------- #
# Settings
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RetrievalSetting:
    """One index configuration: a method and its parameters (defaults filled in)."""

    method: str
    params: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``faiss-hnsw[efSearch=16]``: the method and its non-default
        parameters (``faiss-hnsw`` at the defaults, efSearch 64 included)."""
        return self.label_showing(())

    def label_showing(self, names: Iterable[str]) -> str:
        """The method with its non-default parameters and the parameters
        ``names`` whatever their value, sorted by name:
        ``label_showing(["efSearch"])`` of HNSW at its defaults is
        ``faiss-hnsw[efSearch=64]``."""
        defaults = {**PARAMETERS[self.method], **COMMON_PARAMETERS}
        shown = set(names)
        changed = [f"{k}={v}" for k, v in sorted(self.params.items()) if defaults.get(k) != v or k in shown]
        return self.method + (f"[{','.join(changed)}]" if changed else "")

    def as_dict(self) -> dict[str, Any]:
        """``{"method": ..., **params}``: the form suites and run specs hold."""
        return {"method": self.method, **self.params}


def make_setting(method: Any, params: Mapping[str, Any] | None = None, *, where: str = "retrieval") -> RetrievalSetting:
    """A validated :class:`RetrievalSetting`; errors name ``where`` and the key."""
    # a list or mapping is unhashable: checked before the lookup in PARAMETERS, which would raise TypeError
    if not isinstance(method, str):
        raise ConfigError(f"{where}: key 'method': expected one retrieval method name ({', '.join(METHODS)}), "
                          f"got {describe(method)}")
    if method not in PARAMETERS:
        raise ConfigError(f"{where}: unknown retrieval method {quote(method)}; expected one of {', '.join(METHODS)}")
    allowed = {**PARAMETERS[method], **COMMON_PARAMETERS}
    out = dict(allowed)
    for key, value in (params or {}).items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ConfigError(f"{where}: retrieval method {method!r} has no parameter {quote(key)}; "
                              f"expected one of {known}")
        low = -1 if key in _MAY_BE_NEGATIVE else 0 if key in _MAY_BE_ZERO else 1
        low, high = _BOUNDS.get((method, key), (low, _MAX_VALUE))
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise ConfigError(f"{where}: key {key!r}: expected an integer >= {low} and <= {high}, "
                              f"got {quote(value)}")
        out[key] = int(value)
    return RetrievalSetting(method, out)


def parse_settings(value: Any, *, where: str = "retrieval") -> tuple[RetrievalSetting, ...]:
    """The settings of a suite's ``retrieval:`` key.

    ``value`` is a mapping ``{method: faiss-hnsw, M: 32, efSearch: 64}`` or a
    list of them; a parameter given as a list is swept (one setting per value,
    every combination when several are lists), at most
    :data:`~harness.limits.MAX_GRID_POINTS` settings in all, as for a grid.
    The ``exact`` setting is put first when it is not listed, so that every
    sweep has its baseline.
    """
    entries = value if isinstance(value, list) else [value]
    if not entries:
        raise ConfigError(f"{where}: expected a mapping with 'method' or a non-empty list of them")
    settings: list[RetrievalSetting] = []
    count = 0
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]" if isinstance(value, list) else where
        if not isinstance(entry, dict) or "method" not in entry:
            raise ConfigError(f"{at}: expected a mapping with 'method' and index parameters, got {quote(entry)}")
        params = {k: v for k, v in entry.items() if k != "method"}
        swept = sorted(k for k, v in params.items() if isinstance(v, list))
        if any(not params[k] for k in swept):
            raise ConfigError(f"{at}: a swept parameter needs a non-empty list")
        # counted before expanding: five lists of 1,000 values would otherwise build 10**15 settings
        count += math.prod(len(params[k]) for k in swept)
        if count > MAX_GRID_POINTS:
            raise ConfigError(f"{where}: {count:,} retrieval settings or more, expected at most {MAX_GRID_POINTS:,} "
                              "(each is one evaluation of the test split); sweep fewer values")
        for combo in _product([params[k] for k in swept]):
            settings.append(make_setting(entry["method"], {**params, **dict(zip(swept, combo))}, where=at))
    if not any(s.method == "exact" for s in settings):
        settings.insert(0, make_setting("exact"))
    labels = [s.label for s in settings]
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        raise ConfigError(f"{where}: settings {dupes} are listed twice")
    return tuple(settings)


def sweep_labels(settings: Sequence[RetrievalSetting]) -> list[str]:
    """A label per setting that shows, besides its non-default parameters,
    every parameter taking several values among the settings of its method:
    a sweep ``{method: faiss-hnsw, M: 16, efSearch: [16, 64]}`` gives
    ``faiss-hnsw[M=16,efSearch=16]`` and ``faiss-hnsw[M=16,efSearch=64]``,
    where :attr:`RetrievalSetting.label` drops the default 64."""
    varying: dict[str, set[str]] = {}
    for method in {s.method for s in settings}:
        params = [s.params for s in settings if s.method == method]
        names = {k for p in params for k in p}
        varying[method] = {k for k in names if len({p.get(k) for p in params}) > 1}
    return [s.label_showing(varying[s.method]) for s in settings]


def _product(lists: list[list[Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [()]
    for values in lists:
        out = [(*head, v) for head in out for v in values]
    return out


# --------------------------------------------------------------------------- #
# Inner product through L2 / angle: norm augmentation
# --------------------------------------------------------------------------- #


def augment_items(items: np.ndarray) -> np.ndarray:
    """float32 [n, d + 1]: ``[x, sqrt(M^2 - ||x||^2)]`` with ``M = max ||x||``;
    every row then has norm M (computed in float64 to keep the last column exact)."""
    x = np.asarray(items, dtype=np.float64)
    norms2 = (x * x).sum(1)
    extra = np.sqrt(np.maximum(norms2.max(initial=0.0) - norms2, 0.0))
    return np.ascontiguousarray(np.hstack([x, extra[:, None]]), dtype=np.float32)


def augment_queries(queries: np.ndarray) -> np.ndarray:
    """float32 [B, d + 1]: ``[q, 0]``, the query side of :func:`augment_items`."""
    q = np.asarray(queries, dtype=np.float32)
    return np.ascontiguousarray(np.hstack([q, np.zeros((len(q), 1), dtype=np.float32)]))


def _pad_columns(x: np.ndarray, width: int) -> np.ndarray:
    """Zero columns up to ``width`` (zeros change no distance or inner product)."""
    if x.shape[1] == width:
        return x
    return np.ascontiguousarray(np.hstack([x, np.zeros((len(x), width - x.shape[1]), dtype=np.float32)]))


# --------------------------------------------------------------------------- #
# Indexes
# --------------------------------------------------------------------------- #


class ItemIndex(abc.ABC):
    """A top-k inner-product index over item vectors.

    ``build(items)`` takes float32 [n, d] (row r is item id r + 1);
    ``search(queries, k)`` returns int64 [B, k] item ids (1..n), best first by
    the index's own order, 0 where the index found fewer than k;
    ``nbytes()`` is the size of the index (serialised), in bytes.
    """

    mips: ClassVar[str] = "native"

    def __init__(self, params: Mapping[str, int]):
        self.params = dict(params)

    @abc.abstractmethod
    def build(self, items: np.ndarray) -> ItemIndex: ...

    @abc.abstractmethod
    def search(self, queries: np.ndarray, k: int) -> np.ndarray: ...

    @abc.abstractmethod
    def nbytes(self) -> int: ...


class ExactIndex(ItemIndex):
    """Brute force in torch: ``queries @ items.T`` and ``torch.topk`` (the
    baseline every index is compared with)."""

    def build(self, items: np.ndarray) -> ExactIndex:
        self.items_ = torch.from_numpy(np.ascontiguousarray(items, dtype=np.float32))
        return self

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        k = min(k, len(self.items_))
        scores = torch.from_numpy(queries) @ self.items_.T
        return torch.topk(scores, k, dim=1).indices.numpy().astype(np.int64) + 1

    def nbytes(self) -> int:
        return self.items_.numel() * self.items_.element_size()


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ConfigError("the faiss-* retrieval methods need faiss: pip install 'sessionbench[ann]'") from None
    return faiss


class FaissIndex(ItemIndex):
    """A faiss index; :meth:`_make` builds the method's index for dimension D."""

    def __init__(self, method: str, params: Mapping[str, int]):
        super().__init__(params)
        self.method = method
        self.mips = "native" if method in ("faiss-flat", "faiss-hnsw") else (
            "augment-angular" if method == "faiss-lsh" else "augment-l2")

    def _prepare_items(self, items: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(items, dtype=np.float32) if self.mips == "native" else augment_items(items)
        if self.method == "faiss-ivfpq":
            m = self._pq_m(x.shape[1])
            if m > x.shape[1]:  # checked before padding: m = 100,000 would pad every vector to 100,000 columns
                raise ConfigError(f"retrieval faiss-ivfpq: m = {m} sub-quantisers for vectors of {x.shape[1]} "
                                  f"dimensions (the embedding dimension + 1); expected at most {x.shape[1]}, "
                                  "one dimension or more per sub-quantiser (m = 0 chooses one per 4)")
            x = _pad_columns(x, m * math.ceil(x.shape[1] / m))
        return x

    def _prepare_queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(queries, dtype=np.float32) if self.mips == "native" else augment_queries(queries)
        return _pad_columns(q, self.dim_)

    def _pq_m(self, dim: int) -> int:
        return self.params["m"] or max(1, math.ceil(dim / 4))

    def _nlist(self, n: int) -> int:
        # faiss wants about 39 training points per list; the auto value respects that
        return self.params["nlist"] or max(1, min(int(round(4 * math.sqrt(n))), n // 39))

    def _make(self, faiss, dim: int, n: int):
        p = self.params
        if self.method == "faiss-flat":
            return faiss.IndexFlatIP(dim)
        if self.method == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(dim, p["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = p["efConstruction"]
            return index
        if self.method == "faiss-lsh":
            return faiss.IndexLSH(dim, p["nbits"], True)  # rotate_data: random hyperplanes
        nlist = self._nlist(n)
        if nlist > n:  # faiss's k-means needs a training point per list
            raise ConfigError(f"retrieval {self.method}: nlist = {nlist} lists for {n} items; expected at most "
                              f"{n} (about n / 39 for well-trained lists, what nlist = 0 chooses)")
        if self.method == "faiss-ivfpq" and 2 ** p["nbits"] > n:  # each sub-quantiser's k-means likewise
            raise ConfigError(f"retrieval faiss-ivfpq: nbits = {p['nbits']} makes 2**{p['nbits']} = "
                              f"{2 ** p['nbits']:,} centroids per sub-quantiser for {n} items; expected "
                              f"2**nbits <= {n}, nbits <= {n.bit_length() - 1}")
        quantizer = faiss.IndexFlatL2(dim)
        if self.method == "faiss-ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
        else:
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, self._pq_m(dim), p["nbits"])
        self.quantizer_ = quantizer  # keep the Python object alive with the index
        return index

    def build(self, items: np.ndarray) -> FaissIndex:
        faiss = _faiss()
        x = self._prepare_items(items)
        self.dim_ = x.shape[1]
        index = self._make(faiss, self.dim_, len(x))
        if not index.is_trained:
            index.train(x)
        index.add(x)
        if self.method == "faiss-hnsw":
            index.hnsw.efSearch = self.params["efSearch"]
        if self.method in ("faiss-ivf", "faiss-ivfpq"):
            index.nprobe = self.params["nprobe"]
        self.index_ = index
        return self

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        _, ids = self.index_.search(self._prepare_queries(queries), k)
        return np.where(ids >= 0, ids + 1, 0).astype(np.int64)

    def nbytes(self) -> int:
        return int(_faiss().serialize_index(self.index_).nbytes)


class AnnoyIndex(ItemIndex):
    """annoy's random-projection forest with the ``'dot'`` metric (annoy
    reduces dot products to angles by its own norm augmentation). annoy has
    no batch search: queries are searched one after another."""

    def build(self, items: np.ndarray) -> AnnoyIndex:
        try:
            import annoy
        except ImportError:
            raise ConfigError("the annoy retrieval method needs annoy: pip install 'sessionbench[ann]'") from None
        index = annoy.AnnoyIndex(items.shape[1], "dot")
        index.set_seed(0)
        for row, vector in enumerate(np.asarray(items, dtype=np.float32)):
            index.add_item(row, vector)
        index.build(self.params["n_trees"], n_jobs=1)
        self.index_ = index
        return self

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        out = np.zeros((len(queries), k), dtype=np.int64)
        search_k = self.params["search_k"]
        for i, q in enumerate(queries):
            ids = self.index_.get_nns_by_vector(q, k, search_k=search_k)
            out[i, : len(ids)] = np.asarray(ids, dtype=np.int64) + 1
        return out

    def nbytes(self) -> int:
        # annoy maps a saved index from its file; searching it afterwards still works
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "index.ann")
            self.index_.save(path, prefault=False)
            return os.path.getsize(path)


def make_index(setting: RetrievalSetting) -> ItemIndex:
    """The (unbuilt) index of a setting."""
    params = {k: v for k, v in setting.params.items() if k not in COMMON_PARAMETERS}
    if setting.method == "exact":
        return ExactIndex(params)
    if setting.method == "annoy":
        return AnnoyIndex(params)
    return FaissIndex(setting.method, params)


def _set_faiss_threads(n: int) -> None:
    """faiss's OpenMP threads, when faiss is loaded (only indexes use faiss)."""
    import sys

    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)


# --------------------------------------------------------------------------- #
# Retrieval inside the evaluator
# --------------------------------------------------------------------------- #


def require_embeddings(model: Any, method: str = "retrieval") -> str:
    """The model's name; :class:`ConfigError` naming it unless its class
    declares ``provides_embeddings``."""
    name = str(getattr(model, "name", None) or type(model).__name__)
    if not getattr(type(model), "provides_embeddings", False):
        raise ConfigError(f"--retrieval {method}: model {name!r} does not declare provides_embeddings, "
                          "so its scores cannot be served by an index")
    check_embedding_methods(type(model))
    return name


def check_embedding_methods(cls: type, where: str = "") -> None:
    """:class:`ContractError` unless ``cls``, which declares
    ``provides_embeddings``, has the methods that promises:
    ``session_embeddings`` (or ``embed``) and ``item_embeddings``;
    ``where`` starts the message (a suite's file and key)."""
    missing = [" or ".join(names) for names in (("session_embeddings", "embed"), ("item_embeddings",))
               if not any(callable(getattr(cls, n, None)) for n in names)]
    if missing:
        raise ContractError(f"{where}model {cls.__module__}.{cls.__qualname__} declares provides_embeddings but has no "
                            f"{' and no '.join(missing)} method; implement session_embeddings(batch) -> [B, d] "
                            "and item_embeddings() -> [n_items + 1, d], or drop provides_embeddings")


#: at most this many scores are compared with the retrieved ones at a time
#: (the positions searchsorted returns take 8 bytes each)
_TIE_CHUNK = 2**22


def with_tied_items(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Bool [B, n_items + 1]: the items ``candidates`` (LongTensor [B, k],
    0 for "nothing found") holds in each row, and every item whose score in
    ``scores`` (float [B, n_items + 1]) equals the score of one of them.

    A search returns k items and splits a group of tied scores wherever its
    own order puts them: counting only the returned ones would rank a
    returned target above items tied with it that were left out, where the
    full ranking's pessimistic ties rank it below them. With the tie groups
    completed, the retrieved set of an exact search is every item scoring at
    least its lowest score, so its ranks and top lists up to the depth are
    those of full ranking; an approximate search keeps every item it
    returned, and a returned target ranks below every item tied with it."""
    valid = candidates != 0
    values = scores.float().gather(1, candidates.clamp(min=0))
    # slots of "nothing found" repeat a found score of the row, so they match nothing new
    first = values.gather(1, valid.long().argmax(1, keepdim=True))
    ordered = torch.sort(torch.where(valid, values, first), dim=1).values.contiguous()
    retrieved = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    retrieved.scatter_(1, candidates, True)
    if ordered.shape[1]:
        rows = max(1, _TIE_CHUNK // max(1, scores.shape[1]))
        for lo in range(0, len(scores), rows):
            part = scores[lo : lo + rows].float().contiguous()
            seq = ordered[lo : lo + rows]
            at = torch.searchsorted(seq, part).clamp(max=seq.shape[1] - 1)
            retrieved[lo : lo + rows] |= seq.gather(1, at) == part
    retrieved &= valid.any(1, keepdim=True)  # a row with nothing found retrieved nothing
    retrieved[:, 0] = False  # id 0 marks "nothing found" and is never an item
    return retrieved


def distinct_items(items: torch.Tensor) -> torch.Tensor:
    """LongTensor [B]: the number of distinct item ids (padding 0 left out)
    in each row of the LongTensor [B, L] ``items``."""
    if items.shape[1] == 0:
        return torch.zeros(items.shape[0], dtype=torch.long, device=items.device)
    ordered = torch.sort(items.long(), dim=1).values
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return (starts & (ordered != 0)).sum(1)


def not_retrieved_rank(n_items: int) -> int:
    """The rank stored for a target the index did not retrieve: ``n_items + 1``,
    one past the last position of a full ranking (a miss at every K <= n_items)."""
    return int(n_items) + 1


class Retrieval:
    """Serve a model's top-K from an ANN index during :func:`~harness.evaluation.evaluate.evaluate`.

    ``evaluate(model, data, retrieval=Retrieval("faiss-hnsw", {"efSearch": 64}))``
    calls :meth:`start` (builds the index from the model's item embeddings),
    :meth:`rank_batch` for every batch and :meth:`finish`, whose summary goes
    to ``result.meta["retrieval"]``.

    Args:
        method: one of :data:`METHODS`.
        params: index parameters (see :data:`PARAMETERS`).
        latency_queries: queries timed one at a time (p50/p95 latency).
        qps_queries: at most this many queries are searched in batches for
            the queries-per-second figure.
        seed: picks the timed queries.
        threads: threads of every index build and search (faiss's OpenMP
            threads; torch's for ``exact``). One by default: every method is
            then measured per core, and on a busy machine OpenMP threads that
            spin-wait for a core can slow faiss down tens of times.
    """

    def __init__(self, method: str, params: Mapping[str, Any] | None = None, *, latency_queries: int = 200,
                 qps_queries: int = 10_000, seed: int = 0, threads: int = 1):
        self.setting = make_setting(method, params)
        self.latency_queries = int(latency_queries)
        self.qps_queries = int(qps_queries)
        self.seed = int(seed)
        self.threads = int(threads)

    # -- set-up --------------------------------------------------------------

    def start(self, model: Any, n_items: int, depth: int) -> None:
        """Check the model, build the index over items 1..n_items (timed) and
        reset the per-evaluation state. ``depth``: items retrieved per case."""
        name = require_embeddings(model, self.setting.method)
        self.embed_ = getattr(model, "session_embeddings", None) or model.embed
        with torch.no_grad():
            vectors = model.item_embeddings().detach().float().cpu().numpy()
        if vectors.shape[0] != n_items + 1:
            raise ConfigError(f"model {name!r}: item_embeddings() has {vectors.shape[0]} rows, "
                              f"expected n_items + 1 = {n_items + 1}")
        self.items_ = np.ascontiguousarray(vectors[1:])  # row 0 (padding) is never indexed
        self.n_items_, self.depth_ = int(n_items), int(depth)
        self.index_ = make_index(self.setting)
        if isinstance(self.index_, FaissIndex):
            _faiss()  # loaded before timing, so that its threads can be set
        _set_faiss_threads(self.threads)
        start = time.perf_counter()
        with torch_threads(self.threads):
            self.index_.build(self.items_)
        self.build_seconds_ = time.perf_counter() - start
        self.queries_: list[np.ndarray] = []
        self.case_recalls_: dict[int, list[np.ndarray]] = {}
        self.n_cases_ = 0

    def retrieve(self, queries: np.ndarray, k: int) -> np.ndarray:
        """int64 [B, k]: item ids retrieved for each query (0 where none),
        after the optional exact re-ranking of ``rerank * k`` candidates."""
        rerank = self.setting.params["rerank"]
        with torch_threads(self.threads):
            ids = self.index_.search(queries, min(k * rerank, self.n_items_))
        if rerank > 1:
            vectors = self.items_[np.maximum(ids - 1, 0)]  # [B, k * rerank, d]
            exact = np.einsum("bd,bkd->bk", queries, vectors)
            exact[ids == 0] = -np.inf
            order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
            ids = np.take_along_axis(ids, order, axis=1)
        return ids[:, :k]

    def retrieve_each(self, queries: np.ndarray, ks: np.ndarray) -> np.ndarray:
        """int64 [B, max(ks)]: row ``i`` holds :meth:`retrieve` of query ``i``
        for ``ks[i]`` items, padded with 0.

        Rows asking for the same number of items are searched together. An
        approximate index searched for more items can return other ones
        (annoy's and HNSW's search budgets grow with k), so a row searched
        with its batch's largest k would depend on its batch-mates."""
        out = np.zeros((len(queries), int(ks.max(initial=0))), dtype=np.int64)
        for k in np.unique(ks):
            rows = np.flatnonzero(ks == k)
            ids = self.retrieve(np.ascontiguousarray(queries[rows]), int(k))
            out[rows, : ids.shape[1]] = ids
        return out

    # -- one batch -----------------------------------------------------------

    def rank_batch(self, batch, scores: torch.Tensor, targets: torch.Tensor, width: int,
                   exclude: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Target ranks and top lists when only the retrieved items are ranked.

        The index returns ``depth`` items per case (``depth`` plus the number
        of distinct items of the case's own prefix when ``exclude`` removes
        them, so that at least ``depth`` rankable items remain, as in exact
        ranking; a case's search never depends on the other cases of its
        batch). The
        retrieved items, and every item whose score equals one of theirs
        (:func:`with_tied_items`), are ranked by the model's exact ``scores``
        with :func:`harness.evaluation.metrics.rank_and_top` (pessimistic ties
        among them); every other item is treated as absent. A target not retrieved (or
        ranked below ``depth``) gets :func:`not_retrieved_rank`; an excluded
        target keeps :data:`~harness.evaluation.metrics.UNRANKED`. Also accumulates the
        ANN recall against the exact top lists of ``scores``.
        """
        queries = self.embed_(batch).detach().float().cpu().numpy()
        self.queries_.append(queries)
        _set_faiss_threads(self.threads)
        asked = np.full(len(queries), self.depth_, dtype=np.int64)
        if exclude is not None:
            asked += distinct_items(exclude).cpu().numpy()
        candidates = torch.from_numpy(self.retrieve_each(queries, asked)).to(scores.device)
        retrieved = with_tied_items(scores, candidates)
        masked = scores.masked_fill(~retrieved, -math.inf)
        ranks, top = rank_and_top(masked, targets, width, exclude=exclude)
        found = retrieved.gather(1, targets.long().to(scores.device))
        missed = (ranks != 0) & (ranks != UNRANKED) & (~found | (ranks > self.depth_))
        ranks = ranks.masked_fill(missed, not_retrieved_rank(self.n_items_))
        top = top.masked_fill(~retrieved.gather(1, top), 0)
        _, exact_top = rank_and_top(scores, targets, width, exclude=exclude)
        self._add_recall(top.cpu(), exact_top.cpu())
        return ranks, top

    def _add_recall(self, top: torch.Tensor, exact_top: torch.Tensor) -> None:
        for k in range(1, top.shape[1] + 1):
            ann, ref = top[:, :k], exact_top[:, :k]
            found = ((ann[:, :, None] == ref[:, None, :]) & (ref[:, None, :] > 0)).any(2).sum(1).double()
            denominator = (ref > 0).sum(1).clamp(min=1).double()
            self.case_recalls_.setdefault(k, []).append((found / denominator).numpy())
        self.n_cases_ += len(top)

    # -- the summary ---------------------------------------------------------

    def finish(self, ks: Iterable[int]) -> dict[str, Any]:
        """Measure the search speed on the evaluation's queries and return the
        summary stored in ``result.meta["retrieval"]``."""
        queries = np.concatenate(self.queries_) if self.queries_ else np.zeros((0, self.items_.shape[1]), np.float32)
        # math.fsum: the exactly rounded sum, so the mean does not depend on how the cases were batched
        recall = {str(k): (math.fsum(np.concatenate(self.case_recalls_[k])) / self.n_cases_
                           if self.n_cases_ and k in self.case_recalls_ else float("nan"))
                  for k in ks}
        speed = self.measure_speed(queries)  # before nbytes(): saving an annoy index remaps it
        return {
            "method": self.setting.method, "label": self.setting.label, "params": dict(self.setting.params),
            "mips": self.index_.mips, "depth": self.depth_, "n_items": self.n_items_,
            "dim": int(self.items_.shape[1]), "build_seconds": self.build_seconds_,
            "index_bytes": int(self.index_.nbytes()), "recall": recall, **speed,
        }  # fmt: skip

    def measure_speed(self, queries: np.ndarray, batch_size: int = 500) -> dict[str, float]:
        """Search latency of single queries (p50/p95 ms, and queries/s = 1000 /
        mean ms) and batched throughput (queries/s in batches of
        ``batch_size``), top-``depth`` each time, on ``threads`` threads."""
        nan = float("nan")
        if len(queries) == 0:
            return {"latency_ms_p50": nan, "latency_ms_p95": nan, "single_qps": nan, "batch_qps": nan,
                    "threads": self.threads}
        rng = np.random.default_rng(self.seed)
        picks = rng.integers(0, len(queries), size=self.latency_queries + 10)
        seconds = np.empty(self.latency_queries)
        _set_faiss_threads(self.threads)
        for j, i in enumerate(picks):
            start = time.perf_counter()
            self.retrieve(queries[i : i + 1], self.depth_)
            if j >= 10:  # the first ten warm the caches
                seconds[j - 10] = time.perf_counter() - start
        batched = queries[: self.qps_queries]
        start = time.perf_counter()
        for lo in range(0, len(batched), batch_size):
            self.retrieve(batched[lo : lo + batch_size], self.depth_)
        total = time.perf_counter() - start
        ms = seconds * 1000.0
        return {
            "latency_ms_p50": float(np.percentile(ms, 50)) if len(ms) else nan,
            "latency_ms_p95": float(np.percentile(ms, 95)) if len(ms) else nan,
            "single_qps": float(1000.0 / ms.mean()) if len(ms) else nan,
            "batch_qps": float(len(batched) / total) if total > 0 else nan,
            "threads": self.threads, "latency_queries": int(len(ms)), "qps_queries": int(len(batched)),
        }  # fmt: skip


#: The cut-off every retrieval row reports (the report's retrieval figure and
#: table); the retrieval depth is never below it.
ROW_K = 20


def retrieval_depth(ks: Iterable[int]) -> int:
    """Items an index retrieves per case in a suite's run with retrieval
    settings: ``max(ROW_K, max(ks))``. It is part of such a run's identity
    (search speed and ANN recall are measured at a depth), so a suite whose
    largest K changes measures its retrieval anew; ``ks: [5, 10, 20]``
    measures top-20 searches."""
    return max(ROW_K, *ks)


def evaluate_settings(model: Any, data: Any, settings: Iterable[Mapping[str, Any]], *, protocol: str = "next",
                      ks: Iterable[int] = DEFAULT_KS, batch_size: int = 500, exclude_seen: bool = False,
                      seed: int = 0, top_k: int | None = None) -> list[dict[str, Any]]:
    """Evaluate a fitted model once per retrieval setting (``{"method": ...,
    **params}``) on the test split; one row per setting: the
    :meth:`Retrieval.finish` summary plus ``metrics`` (at ``ks`` and
    :data:`ROW_K`). ``top_k``: the retrieval depth, items retrieved per case
    (default the largest of those K; the runner passes
    :func:`retrieval_depth`)."""
    from harness.evaluation.evaluate import evaluate

    ks = sorted({*ks, ROW_K})
    rows = []
    for setting in settings:
        params = {k: v for k, v in setting.items() if k != "method"}
        retrieval = Retrieval(setting["method"], params, seed=seed)
        result = evaluate(model, data, protocol=protocol, ks=ks, batch_size=batch_size,
                          exclude_seen=exclude_seen, retrieval=retrieval, top_k=top_k)
        rows.append({**result.meta["retrieval"], "metrics": result.metrics(ks)})
    return rows


__all__ = [
    "COMMON_PARAMETERS", "METHODS", "PARAMETERS", "AnnoyIndex", "ExactIndex", "FaissIndex", "ItemIndex",
    "Retrieval", "RetrievalSetting", "augment_items", "augment_queries", "distinct_items", "make_index",
    "make_setting", "evaluate_settings", "not_retrieved_rank", "parse_settings", "require_embeddings",
    "retrieval_depth", "sweep_labels", "with_tied_items", "ROW_K",
]
