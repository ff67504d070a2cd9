"""Seeded synthetic click sessions with planted, analysable structure.

Tests and the default benchmark suite use this generator so that they need no
download, and so that models have real structure to learn whose strength is
known in advance. The entry point is :func:`generate_events`; the planted
truth it returns in ``meta`` lets :func:`optimal_next_item_hit_rate` compute,
exactly, the best HitRate@1 that any predictor using only the last click can
reach on the generated stream.

Generative process
==================

Notation: ``n = n_items``, ``C = n_communities``, ``s = zipf_exponent``,
``t = transition_prob``, ``λ = community_leak``, ``b = successor_bias``.
All randomness comes from one ``np.random.default_rng(seed)``, drawn in a
fixed order, so the same arguments give byte-identical output.

1. **Popularity (Zipf).** A random permutation gives every item ``i`` a rank
   ``r(i)`` in ``1..n``; its popularity is ::

       g(i) = r(i)^(-s) / H(n, s),      H(n, s) = sum_{k=1..n} k^(-s).

2. **Communities.** Items are dealt to communities at random in equal shares:
   ``c(i) = π(i) mod C`` for a second random permutation ``π`` (so every
   community has ``floor(n/C)`` or ``ceil(n/C)`` items, hence at least two).
   A community's weight is its popularity mass ``w(c) = sum_{c(i)=c} g(i)``.
   The *popularity draw* of a session in community ``c`` is the mixture ::

       q_c(j) = λ g(j) + (1 - λ) g(j) [c(j) = c] / w(c),

   i.e. with probability ``λ`` ("leak") an item from global popularity, else
   an item from the session's community in proportion to popularity.
   Averaged over ``c ~ w`` this is exactly ``g``.

3. **Planted chain.** Every item ``i`` gets one successor ``S(i) ≠ i`` from
   its own community, drawn with probability ::

       P(S(i) = j) = g(j)^b / sum_{k: c(k)=c(i), k≠i} g(k)^b   for c(j)=c(i), j≠i

   (``b = 1``: popular items are likelier successors; ``b = 0``: uniform).

4. **Sessions.** Session ``σ`` draws its community ``C_σ ~ w``, a length
   ``L_σ`` (step 5) and a start time (step 6). Its clicks are ::

       X_0 ~ q_{C_σ}
       X_{k+1} = S(X_k)          with probability t
               ~ q_{C_σ}         with probability 1 - t      (k + 1 < L_σ)

   Immediate repeats (``X_{k+1} = X_k``) can come from the popularity draw,
   as in real logs.

5. **Lengths.** ``L = min(1 + N, max_length)`` with ``N`` negative binomial
   of shape ``r = length_dispersion`` and mean ``m`` (drawn as a gamma-Poisson
   mixture: ``Λ ~ Gamma(r, m / r)``, ``N ~ Poisson(Λ)``). ``P(N = 0) =
   (r / (r + m))^r``, so there are always length-1 sessions (which the
   pipeline drops), and ``r < 1`` gives a heavier-than-geometric tail. ``m`` is
   solved numerically so that ``E[L] = mean_length`` *after* the cap.

6. **Times.** Session starts are spread over ``[T0, T0 + days · 86400)`` with
   ``T0 = 2024-01-01 00:00 UTC = 1704067200`` and density (by thinning a
   uniform draw) ::

       f(τ) ∝ 1 + a · cos(2π (τ / 86400 - peak_hour / 24)),   a = daily_amplitude

   Sessions are numbered 1..n_sessions in order of start time. The gap
   before each later click is ``max(Exp(mean_gap_seconds), 0.001)`` seconds,
   so times rise strictly within a session.

First-order optimum
===================

Pool all transitions ``(X_k, X_{k+1})`` of the stream (each session
contributes ``L - 1``, exactly the cases of the ``next`` protocol). The
next click depends on the past only through ``(C_σ, X_k)``, so the best
predictor that sees only ``X_k = i`` ranks ``j`` by ::

    P(j | i) = t [j = S(i)] + (1 - t) g(j) · (α(i) if c(j) = c(i) else β(i))

where ``α(i) = λ + (1 - λ) P(C = c(i) | X = i) / w(c(i))`` and ``β(i) = λ +
(1 - λ) P(C = c | X = i) / w(c)`` for any ``c ≠ c(i)`` (the same for all of
them). The posterior of the session community is exact: with ``W_k = P(L ≥ k
+ 2)`` the weight of transitions out of position ``k`` and the recursions ::

    u_0 = λ g,                 u_{k+1} = t S#u_k + (1 - t) λ g
    v_0 = (1 - λ) g / w(c(·)),   v_{k+1} = t S#v_k + (1 - t)(1 - λ) g / w(c(·))

(``S#`` pushes mass from ``i`` to ``S(i)``; ``S`` keeps communities, so the
community part ``v`` of ``P(X_k = · | C)`` never leaves ``c(·)``),
``U = Σ_k W_k u_k``, ``V = Σ_k W_k v_k`` and ``M(i) = U(i) + w(c(i)) V(i)``
(the pooled weight of last item ``i``) one gets ``α(i) = λ + (1 - λ)(U(i) +
V(i)) / M(i)`` and ``β(i) = λ + (1 - λ) U(i) / M(i)``. The argmax of ``P(· | i)``
is one of three candidates: ``S(i)``, the most popular item of ``c(i)``, or
the most popular item outside ``c(i)``; so ::

    HitRate@1* = Σ_i M(i) max_j P(j | i) / Σ_i M(i).

A Markov chain estimated on much data approaches this value; a model that
reads the whole session can beat it (earlier clicks reveal ``C_σ``).
Special cases: ``t = 0, λ = 1`` gives ``max_j g(j)``; ``t = 1`` gives 1.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from harness.errors import ConfigError, did_you_mean

__all__ = [
    "EPOCH_START",
    "STRUCTURE_DEFAULTS",
    "generate_events",
    "optimal_next_item_hit_rate",
    "first_order_oracle",
    "expected_successor_rate",
]

#: 2024-01-01 00:00:00 UTC as epoch seconds: the earliest possible session start.
EPOCH_START = 1704067200.0

GENERATOR_VERSION = 1

#: Structure parameters of :func:`generate_events` and their defaults.
#: ``n_communities=None`` means ``min(20, n_items // 2)``.
STRUCTURE_DEFAULTS: dict[str, Any] = {
    "zipf_exponent": 1.0,
    "n_communities": None,
    "community_leak": 0.1,
    "transition_prob": 0.5,
    "successor_bias": 1.0,
    "mean_length": 5.0,
    "length_dispersion": 0.75,
    "max_length": 50,
    "mean_gap_seconds": 60.0,
    "daily_amplitude": 0.5,
    "peak_hour": 20.0,
}

_DAY = 86400.0
_MIN_GAP = 1e-3


# --------------------------------------------------------------------------- #
# validation
# --------------------------------------------------------------------------- #
def _int(name: str, value: Any, *, lo: int, hi: int | None = None, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"synthetic: {name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"synthetic: {name} must be {bound}{why}, got {value}")
    return value


def _real(
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"synthetic: {name} must be a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond the range of a float
        value = math.inf
    ok = math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ConfigError(
            f"synthetic: {name} must be a finite number in {left}{lo_s}, {hi_s}{right}, got {value!r}"
        )
    return value


def _resolve_params(n_sessions: Any, n_items: Any, seed: Any, days: Any, structure: dict) -> dict:
    unknown = sorted(set(structure) - set(STRUCTURE_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"synthetic: unknown parameter(s) {', '.join(unknown)}{did_you_mean(unknown[0], STRUCTURE_DEFAULTS)}; "
            f"known: n_sessions, n_items, seed, days, {', '.join(STRUCTURE_DEFAULTS)}"
        )
    p: dict[str, Any] = {}
    p["n_sessions"] = _int("n_sessions", n_sessions, lo=1)
    p["n_items"] = _int("n_items", n_items, lo=2)
    p["seed"] = _int("seed", seed, lo=0)
    p["days"] = _real("days", days, lo=0.0, lo_open=True)
    s = {**STRUCTURE_DEFAULTS, **structure}
    p["zipf_exponent"] = _real("zipf_exponent", s["zipf_exponent"], lo=0.0)
    if s["n_communities"] is None:
        p["n_communities"] = min(20, p["n_items"] // 2)
    else:
        p["n_communities"] = _int(
            "n_communities",
            s["n_communities"],
            lo=1,
            hi=p["n_items"] // 2,
            why=" (every community needs at least 2 items so that a successor "
            f"can differ from its item; n_items={p['n_items']})",
        )
    p["community_leak"] = _real("community_leak", s["community_leak"], lo=0.0, hi=1.0)
    p["transition_prob"] = _real("transition_prob", s["transition_prob"], lo=0.0, hi=1.0)
    p["successor_bias"] = _real("successor_bias", s["successor_bias"], lo=0.0)
    p["max_length"] = _int("max_length", s["max_length"], lo=2)
    p["mean_length"] = _real("mean_length", s["mean_length"], lo=1.0, lo_open=True)
    if p["mean_length"] > p["max_length"]:
        raise ConfigError(
            f"synthetic: mean_length ({p['mean_length']:g}) must not exceed "
            f"max_length ({p['max_length']})"
        )
    p["length_dispersion"] = _real("length_dispersion", s["length_dispersion"], lo=0.0, lo_open=True)
    p["mean_gap_seconds"] = _real(
        "mean_gap_seconds", s["mean_gap_seconds"], lo=_MIN_GAP, lo_open=True
    )
    p["daily_amplitude"] = _real("daily_amplitude", s["daily_amplitude"], lo=0.0, hi=1.0)
    p["peak_hour"] = _real("peak_hour", s["peak_hour"], lo=0.0, hi=24.0, hi_open=True)
    return p


# --------------------------------------------------------------------------- #
# session lengths
# --------------------------------------------------------------------------- #
def _capped_mean(m: float, r: float, max_length: int) -> float:
    """E[min(1 + N, max_length)] for N ~ NB(shape r, mean m)."""
    if m <= 0.0:
        return 1.0
    k = np.arange(max_length - 1)
    return 1.0 + float(stats.nbinom.sf(k, r, r / (r + m)).sum())


def _solve_nb_mean(mean_length: float, r: float, max_length: int) -> float:
    """The NB mean m with E[min(1 + N, max_length)] = mean_length (bisection)."""
    target = mean_length
    if target >= max_length:
        return math.inf
    lo, hi = 0.0, max(target - 1.0, 1.0)
    while _capped_mean(hi, r, max_length) < target:
        lo, hi = hi, hi * 2.0
        if hi > 1e15:  # pragma: no cover - target is < max_length, so this ends
            return hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _capped_mean(mid, r, max_length) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def _length_pmf(m: float, r: float, max_length: int) -> np.ndarray:
    """float [max_length + 1]: P(L = k), index 0 unused (0.0)."""
    pmf = np.zeros(max_length + 1)
    if math.isinf(m):
        pmf[max_length] = 1.0
        return pmf
    if m <= 0.0:
        pmf[1] = 1.0
        return pmf
    p = r / (r + m)
    k = np.arange(max_length - 1)
    pmf[1:max_length] = stats.nbinom.pmf(k, r, p)
    pmf[max_length] = max(0.0, 1.0 - float(pmf[1:max_length].sum()))
    return pmf


# --------------------------------------------------------------------------- #
# the generator
# --------------------------------------------------------------------------- #
def _community_sampler(g: np.ndarray, comm: np.ndarray, n_comm: int):
    """Items grouped by community and per-community cumulative probabilities."""
    items = np.arange(1, len(g))
    order = np.lexsort((items, comm[1:]))  # by community, then item id
    grouped = items[order]  # item ids grouped by community
    gc = comm[grouped]
    starts = np.searchsorted(gc, np.arange(n_comm), side="left")
    ends = np.searchsorted(gc, np.arange(n_comm), side="right")
    w = np.bincount(gc, weights=g[grouped], minlength=n_comm)
    cdf = np.cumsum(g[grouped])
    base = np.concatenate([[0.0], cdf])[starts]  # mass before each community
    within = (cdf - base[gc]) / w[gc]
    within[ends - 1] = 1.0
    keys = gc + within  # strictly increasing: community c occupies (c, c + 1]
    return grouped, starts, ends, w, keys


def generate_events(
    *, n_sessions: int, n_items: int, seed: int, days: float = 30.0, **structure: Any
) -> tuple[pd.DataFrame, dict]:
    """Generate a synthetic click log with planted structure.

    The generative process and the exact first-order optimum are written out
    in the module docstring (:mod:`harness.data.synthetic`).

    Parameters (keyword only; ``ConfigError`` on an unknown name or bad value):

    - ``n_sessions`` (int >= 1), ``n_items`` (int >= 2), ``seed`` (int >= 0).
    - ``days`` = 30.0: session starts lie in ``[T0, T0 + days)``,
      ``T0`` = 2024-01-01 00:00 UTC.
    - ``zipf_exponent`` = 1.0 (>= 0): ``g(i) ∝ rank(i)^-s``.
    - ``n_communities`` = ``min(20, n_items // 2)`` (1..n_items // 2).
    - ``community_leak`` = 0.1 (in [0, 1]): chance that a non-chain click comes
      from global popularity rather than the session's community.
    - ``transition_prob`` = 0.5 (in [0, 1]): chance that the next click is the
      current item's planted successor.
    - ``successor_bias`` = 1.0 (>= 0): successors drawn ∝ ``g^bias`` within
      the community (0 = uniform).
    - ``mean_length`` = 5.0 (in (1, max_length]): mean session length after
      the cap.
    - ``length_dispersion`` = 0.75 (> 0): negative-binomial shape; smaller
      means more length-1 sessions and a heavier tail.
    - ``max_length`` = 50 (>= 2): hard cap on session length.
    - ``mean_gap_seconds`` = 60.0 (> 0.001): mean gap between clicks.
    - ``daily_amplitude`` = 0.5 (in [0, 1]) and ``peak_hour`` = 20.0 (UTC, in
      [0, 24)): daily cycle of session starts.

    Returns ``(events, meta)``. ``events``: int64 ``session`` (1..n_sessions,
    numbered by start time), int64 ``item`` (raw ids 1..n_items), float64
    ``time`` (epoch seconds, UTC); ordered by session then time, times strictly
    increasing within a session. ``meta`` (JSON-serialisable) holds the
    resolved ``params`` and the planted truth; per-item lists are indexed by
    raw item id, with a placeholder at index 0: ``popularity`` (g, [0] = 0.0),
    ``popularity_rank`` ([0] = 0), ``community`` ([0] = -1), ``successor``
    ([0] = 0); also ``community_weight`` (per community), ``length_pmf``
    (P(L = k) at index k), ``nb_mean``, ``n_events``, ``start_time``,
    ``first_order_optimal_hit_rate`` and ``expected_successor_rate``.
    """
    p = _resolve_params(n_sessions, n_items, seed, days, structure)
    n_sess, n, n_comm = p["n_sessions"], p["n_items"], p["n_communities"]
    t_prob, leak = p["transition_prob"], p["community_leak"]
    rng = np.random.default_rng(p["seed"])

    # 1. Zipf popularity over a random permutation (index 0 = no item).
    rank = np.zeros(n + 1, dtype=np.int64)
    rank[1:] = rng.permutation(n) + 1
    g = np.zeros(n + 1)
    g[1:] = rank[1:].astype(np.float64) ** (-p["zipf_exponent"])
    g /= g.sum()

    # 2. Communities, dealt in equal shares.
    comm = np.full(n + 1, -1, dtype=np.int64)
    comm[1:] = rng.permutation(n) % n_comm
    grouped, c_start, c_end, w, keys = _community_sampler(g, comm, n_comm)
    global_cdf = np.cumsum(g[1:])
    global_cdf[-1] = 1.0

    # 3. Successors: within the community, ∝ g^bias, never the item itself.
    #    Exact draw without rejection: sample u over the community's mass minus
    #    the item's own, and skip over the item's slot in the cumulative sum.
    sw = np.zeros(n + 1)
    sw[1:] = g[1:] ** p["successor_bias"] if p["successor_bias"] > 0 else 1.0
    sw_grouped = sw[grouped]
    gc = comm[grouped]
    s_cdf = np.cumsum(sw_grouped)
    s_base = np.concatenate([[0.0], s_cdf])[c_start]
    s_mass = s_cdf[c_end - 1] - s_base  # community mass of g^bias
    own_before = s_cdf - sw_grouped - s_base[gc]  # mass before each item, in community
    u = rng.random(n) * (s_mass[gc] - sw_grouped)
    u = np.where(u >= own_before, u + sw_grouped, u)  # skip the item itself
    local_cdf = s_cdf - s_base[gc]
    succ_grouped = np.empty(n, dtype=np.int64)
    for c in range(n_comm):  # per community, not per click
        a, b = c_start[c], c_end[c]
        idx = np.searchsorted(local_cdf[a:b], u[a:b], side="right")
        idx = np.minimum(idx, b - a - 1)
        pick = grouped[a + idx]
        # guard against rounding landing on the item itself: take its neighbour
        same = pick == grouped[a:b]
        if same.any():
            alt = np.where(idx[same] + 1 < b - a, idx[same] + 1, idx[same] - 1)
            pick[same] = grouped[a + alt]
        succ_grouped[a:b] = pick
    succ = np.zeros(n + 1, dtype=np.int64)
    succ[grouped] = succ_grouped

    # 4/5. Session communities and lengths.
    sess_comm = np.minimum(
        np.searchsorted(np.cumsum(w), rng.random(n_sess), side="right"), n_comm - 1
    )
    r = p["length_dispersion"]
    m = _solve_nb_mean(p["mean_length"], r, p["max_length"])
    if math.isinf(m):
        lengths = np.full(n_sess, p["max_length"], dtype=np.int64)
    else:
        lam = rng.gamma(r, m / r, size=n_sess)
        lengths = np.minimum(1 + rng.poisson(lam), p["max_length"]).astype(np.int64)

    # 6. Session starts by thinning a uniform draw, numbered by start time.
    horizon = p["days"] * _DAY
    amp, phase = p["daily_amplitude"], p["peak_hour"] / 24.0
    starts = np.empty(n_sess)
    todo = np.arange(n_sess)
    while todo.size:
        cand = rng.random(todo.size) * horizon
        accept = rng.random(todo.size) * (1.0 + amp) <= 1.0 + amp * np.cos(
            2.0 * np.pi * (cand / _DAY - phase)
        )
        starts[todo[accept]] = cand[accept]
        todo = todo[~accept]
    starts = np.sort(starts) + EPOCH_START

    # 4. Clicks, all active sessions advanced together, one position at a time.
    offsets = np.zeros(n_sess + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n_events = int(offsets[-1])
    items = np.empty(n_events, dtype=np.int64)
    times = np.empty(n_events, dtype=np.float64)
    active = np.arange(n_sess)
    cur_item = np.zeros(n_sess, dtype=np.int64)
    cur_time = starts.copy()
    for k in range(int(lengths.max())):
        if k > 0:
            active = active[lengths[active] > k]
        size = active.size
        if size == 0:
            break
        mode = rng.random(size)
        u_item = rng.random(size)
        # popularity draw: global (leak) or within the session's community
        from_global = mode < leak if k == 0 else (mode - t_prob) < leak * (1.0 - t_prob)
        c = sess_comm[active]
        in_comm = grouped[
            np.minimum(np.searchsorted(keys, c + u_item, side="right"), c_end[c] - 1)
        ]
        glob = 1 + np.minimum(np.searchsorted(global_cdf, u_item, side="right"), n - 1)
        nxt = np.where(from_global, glob, in_comm)
        if k > 0:
            chain = mode < t_prob
            nxt = np.where(chain, succ[cur_item[active]], nxt)
            gaps = np.maximum(rng.exponential(p["mean_gap_seconds"], size), _MIN_GAP)
            cur_time[active] += gaps
        cur_item[active] = nxt
        pos = offsets[active] + k
        items[pos] = nxt
        times[pos] = cur_time[active]

    events = pd.DataFrame(
        {
            "session": np.repeat(np.arange(1, n_sess + 1, dtype=np.int64), lengths),
            "item": items,
            "time": times,
        }
    )

    pmf = _length_pmf(m, r, p["max_length"])
    meta: dict[str, Any] = {
        "generator": "harness.data.synthetic",
        "version": GENERATOR_VERSION,
        "params": p,
        "start_time": EPOCH_START,
        "n_events": n_events,
        "nb_mean": None if math.isinf(m) else float(m),
        "popularity": [float(x) for x in g],
        "popularity_rank": [int(x) for x in rank],
        "community": [int(x) for x in comm],
        "community_weight": [float(x) for x in w],
        "successor": [int(x) for x in succ],
        "length_pmf": [float(x) for x in pmf],
    }
    meta["first_order_optimal_hit_rate"] = optimal_next_item_hit_rate(meta)
    meta["expected_successor_rate"] = expected_successor_rate(meta)
    return events, meta


# --------------------------------------------------------------------------- #
# analysis of the planted truth
# --------------------------------------------------------------------------- #
def _first_order(meta: dict) -> dict[str, np.ndarray]:
    """Exact pooled next-click statistics given the last click (module docstring)."""
    prm = meta["params"]
    t, lam = float(prm["transition_prob"]), float(prm["community_leak"])
    g = np.asarray(meta["popularity"], dtype=np.float64)
    comm = np.asarray(meta["community"], dtype=np.int64)
    succ = np.asarray(meta["successor"], dtype=np.int64)
    w = np.asarray(meta["community_weight"], dtype=np.float64)
    pmf = np.asarray(meta["length_pmf"], dtype=np.float64)
    n = len(g) - 1
    n_comm = len(w)
    items = np.arange(1, n + 1)

    # W_k = P(L >= k + 2), k = 0..max_length - 2
    tail = np.cumsum(pmf[::-1])[::-1]  # tail[j] = P(L >= j)
    weights = tail[2:]
    w_item = np.zeros(n + 1)
    w_item[1:] = w[comm[1:]]
    g_over_w = np.zeros(n + 1)
    g_over_w[1:] = g[1:] / w_item[1:]

    u = lam * g
    v = (1.0 - lam) * g_over_w
    U = np.zeros(n + 1)
    V = np.zeros(n + 1)
    for k, wk in enumerate(weights):
        if k > 0:
            u = t * np.bincount(succ, weights=u, minlength=n + 1) + (1.0 - t) * lam * g
            v = t * np.bincount(succ, weights=v, minlength=n + 1) + (1.0 - t) * (1.0 - lam) * g_over_w
        if wk > 0:
            U += wk * u
            V += wk * v
    M = U + w_item * V
    M[0] = 0.0
    safe = np.where(M > 0, M, 1.0)
    alpha = np.where(M > 0, lam + (1.0 - lam) * (U + V) / safe, lam)
    beta = np.where(M > 0, lam + (1.0 - lam) * U / safe, lam)

    # candidates: the successor, the top item of the own community, the top item outside it
    order = np.lexsort((items, -g[1:]))  # by popularity desc, then id
    by_pop = items[order]
    top_in = np.zeros(n_comm, dtype=np.int64)
    first = np.unique(comm[by_pop], return_index=True)
    top_in[first[0]] = by_pop[first[1]]
    best = by_pop[0]
    outside = by_pop[comm[by_pop] != comm[best]]
    second = outside[0] if outside.size else 0  # 0: a single community, no outside item
    ci = comm[items]
    top_out = np.where(ci == comm[best], second, best)

    a_i, b_i, s_i = alpha[items], beta[items], succ[items]
    score_succ = t + (1.0 - t) * g[s_i] * a_i
    ti = top_in[ci]
    score_in = (1.0 - t) * g[ti] * a_i + t * (ti == s_i)
    score_out = np.where(top_out > 0, (1.0 - t) * g[top_out] * b_i, -1.0)
    cand = np.stack([s_i, ti, top_out])
    scores = np.stack([score_succ, score_in, score_out])
    pick = np.argmax(scores, axis=0)

    prediction = np.zeros(n + 1, dtype=np.int64)
    hit_prob = np.zeros(n + 1)
    succ_prob = np.zeros(n + 1)
    prediction[1:] = cand[pick, np.arange(n)]
    hit_prob[1:] = scores[pick, np.arange(n)]
    succ_prob[1:] = score_succ
    return {"prediction": prediction, "hit_prob": hit_prob, "weight": M, "successor_prob": succ_prob}


def first_order_oracle(meta: dict) -> dict[str, np.ndarray]:
    """The Bayes-optimal next-click prediction from the last click alone.

    Returns arrays indexed by raw item id (index 0 unused): ``prediction``
    (argmax_j P(next = j | last = i)), ``hit_prob`` (that maximum probability),
    ``weight`` (the pooled share of transitions whose last click is ``i``,
    unnormalised: it sums to E[L - 1]) and ``successor_prob`` (P(next = S(i) |
    last = i)). See the module docstring for the derivation.
    """
    return _first_order(meta)


def optimal_next_item_hit_rate(meta: dict) -> float:
    """Exact best HitRate@1 of any predictor that sees only the last click.

    Averaged over all transitions of the stream (the ``next`` protocol's
    cases before the pipeline's item filters). ``meta`` is the dict returned by
    :func:`generate_events` (also after a JSON round trip).
    """
    r = _first_order(meta)
    total = r["weight"].sum()
    return float((r["weight"] * r["hit_prob"]).sum() / total)


def expected_successor_rate(meta: dict) -> float:
    """Expected share of transitions ``i -> S(i)`` (chain steps plus popularity
    draws that happen to hit the successor)."""
    r = _first_order(meta)
    total = r["weight"].sum()
    return float((r["weight"] * r["successor_prob"]).sum() / total)
