"""One colour and one marker per model label, shared by every figure and table order."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: built-in models, in their fixed palette slots (labels are matched ignoring
#: case and punctuation: "SR-GNN" and "srgnn" take the same slot)
KNOWN_MODELS: tuple[str, ...] = (
    "pop", "spop", "markov", "ar", "sr", "itemknn", "sknn", "vsknn", "stan", "vstan", "gru4rec", "srgnn",
)
_PALETTE: tuple[str, ...] = (
    # the 12 built-in slots
    "#7f7f7f", "#bcbd22", "#17becf", "#8c564b", "#e377c2", "#9467bd",
    "#2ca02c", "#005a32", "#ff7f0e", "#c49c00", "#1f77b4", "#d62728",
    # further labels
    "#393b79", "#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d",
    "#31a354", "#756bb1", "#000000", "#fd8d3c", "#8c6d31", "#de2d26",
)
_MARKERS: tuple[str, ...] = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p", "d", "8", "H")


@dataclass(frozen=True)
class Style:
    """How a model label is drawn everywhere: colour, marker, and its slot
    (slots also order the labels in tables and legends)."""

    color: str
    marker: str
    slot: int


def _normalise_label(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def model_styles(labels: Iterable[str]) -> dict[str, Style]:
    """One :class:`Style` per label, stable across figures.

    A label naming a built-in model (:data:`KNOWN_MODELS`) takes that model's
    fixed slot (reserved even when that model is absent); the other labels
    take the slots after them, in sorted order.
    Slot s gets colour ``_PALETTE[s mod 24]`` and marker ``_MARKERS[s mod 15]``
    (so colour/marker pairs repeat only after 120 labels).
    """
    labels = sorted(set(map(str, labels)))
    slots: dict[str, int] = {}
    taken: set[int] = set()
    for label in labels:
        norm = _normalise_label(label)
        if norm in KNOWN_MODELS and KNOWN_MODELS.index(norm) not in taken:
            slots[label] = KNOWN_MODELS.index(norm)
            taken.add(slots[label])
    free = iter(range(len(KNOWN_MODELS), 10**6))  # the built-in slots stay reserved
    for label in labels:
        if label not in slots:
            slots[label] = next(free)
    return {
        label: Style(_PALETTE[s % len(_PALETTE)], _MARKERS[s % len(_MARKERS)], s) for label, s in slots.items()
    }


def _ordered(labels: Iterable[str], styles: dict[str, Style]) -> list[str]:
    return sorted(set(labels), key=lambda label: (styles[label].slot, label))
