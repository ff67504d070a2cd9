"""One style (colour, marker, hatch) per model label, the same in every report.

A label's style depends only on the label itself (and on an optional
``style:`` map of the suite), never on which other labels a report holds:

- the 12 built-in models (:data:`KNOWN_MODELS`, matched ignoring case and
  punctuation, so "SR-GNN" is srgnn) have fixed slots: slot i gets colour
  a palette colour, marker ``MARKERS[i]`` (filled) and hatch ``HATCHES[i]``;
- the later built-in neural baselines (:data:`SECOND_TIER`: narm, stamp,
  sasrec, bprmf, fpmc) have fixed styles with open markers;
- any other label (a plugin, a tuned variant) gets its colour, marker and
  hatch from three independent stable hashes of its normalised name
  (SHA-256, not Python's per-process ``hash``), and it is drawn *open*
  (white marker faces; bars as in :meth:`Style.bar_look`), so it never looks
  like a built-in model even when it shares a built-in's colour. Two such
  labels look alike (same colour, and same hatch or same marker; or the
  same hatch on bars of about the same grey, :func:`style_collisions`) with
  probability 97/1728, about 1/18 (23/1728 of it the same colour); the
  report then says so in a note, and the suite's ``style:`` map settles it.

Collision handling that looks at the other labels (e.g. "take the next free
slot") would make a plugin's colour change with the set of models in a
report, which is what the fixed rule avoids.

The palette is Okabe and Ito's eight colours extended by four chosen
greedily (max-min CIEDE2000 distance to the palette, in normal vision and
under simulated deuteranopia and protanopia, lightness L* in 25..75 so
that lines stay visible on white). :func:`simulate_cvd` and
:func:`delta_e_2000` let a test check that every pair of the 12 stays
apart (see docs/suites-and-reports.md for the threshold).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.errors import ConfigError, did_you_mean, quote

#: built-in models, in their fixed palette slots
KNOWN_MODELS: tuple[str, ...] = (
    "pop", "spop", "markov", "ar", "sr", "itemknn", "sknn", "vsknn", "stan", "vstan", "gru4rec", "srgnn",
)
#: the colours of the 12 built-in slots: Okabe-Ito (black, orange, sky blue,
#: bluish green, yellow, blue, vermillion, reddish purple) and four extensions
PALETTE: tuple[str, ...] = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
    "#960000", "#4B5A5A", "#1E3C69", "#1E0FD2",
)
# slot -> palette index: srgnn and gru4rec (the models most papers compare)
# take vermillion and blue, the pair that stays furthest apart for every viewer
_SLOT_COLOUR = (0, 4, 9, 8, 7, 2, 1, 10, 3, 11, 5, 6)
#: the later built-in neural baselines: fixed styles with open markers (the
#: palette has no further colour that stays apart under colour blindness), all
#: five colours different, and single-density hatches; they follow the 12 slots
SECOND_TIER: dict[str, tuple[str, str, str]] = {
    "narm": ("#009E73", "o", "/"),
    "stamp": ("#CC79A7", "s", "\\"),
    "sasrec": ("#E69F00", "^", "x"),
    "bprmf": ("#4B5A5A", "D", "."),
    "fpmc": ("#56B4E9", "v", "+"),
}
#: filled markers of the built-in slots (all different shapes)
MARKERS: tuple[str, ...] = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p")
#: bar hatches of the built-in slots ("" = solid), so bars read in grey scale
HATCHES: tuple[str, ...] = ("", "//", "\\\\", "xx", "..", "++", "oo", "--", "||", "//..", "\\\\..", "xx..")
#: the slot of labels outside the built-ins (they sort by name after the built-ins)
OTHER_SLOT = len(KNOWN_MODELS) + len(SECOND_TIER)
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class Style:
    """How a model label is drawn everywhere.

    Attributes:
        color: ``#RRGGBB``.
        marker: a matplotlib marker.
        hatch: a matplotlib hatch for bars ("" = solid).
        filled: False for labels outside the built-ins: markers are drawn open.
        slot: built-in slot (0..11, then 12..16 for :data:`SECOND_TIER`), or
            :data:`OTHER_SLOT` for other labels; orders tables and legends.
    """

    color: str
    marker: str
    hatch: str
    filled: bool
    slot: int

    @property
    def face(self) -> str:
        """Marker face colour: the colour itself, or white for open markers."""
        return self.color if self.filled else "white"

    @property
    def light(self) -> bool:
        """Whether the colour is too light to show on white as a thin line
        (CIELAB lightness above :data:`LIGHT_LINE_LIGHTNESS`: Okabe-Ito's yellow)."""
        return lightness(self.color) > LIGHT_LINE_LIGHTNESS

    def line_look(self, linewidth: float) -> dict[str, Any]:
        """Keyword arguments of a line or marker plot (``plot``, ``errorbar``,
        a legend's ``Line2D``) in this style: colour, marker and marker face;
        a :attr:`light` colour is also outlined in :data:`LIGHT_LINE_OUTLINE`
        (a stroke ``linewidth`` + 1 wide under the line and its markers)."""
        look: dict[str, Any] = {"color": self.color, "marker": self.marker, "markerfacecolor": self.face}
        if self.light:
            from matplotlib import patheffects

            look["path_effects"] = [patheffects.withStroke(linewidth=linewidth + 1.0, foreground=LIGHT_LINE_OUTLINE)]
        return look

    @property
    def hatch_color(self) -> str:
        """The colour of the bar's hatch lines. A filled bar is hatched in
        black, or in white when its fill is dark (CIELAB lightness below
        :data:`DARK_FILL_LIGHTNESS`: black hatching on pop's black or vstan's
        deep blue does not show, least of all in grey scale); an open bar is
        hatched in its colour (see :meth:`bar_look`)."""
        if not self.filled:
            return self.color
        return "white" if lightness(self.color) < DARK_FILL_LIGHTNESS else "black"

    def bar_look(self, hatch_repeat: int = 1) -> dict[str, Any]:
        """Keyword arguments of a bar (and its legend patch) in this style.

        A filled style is a solid bar of its colour, outlined in black and
        hatched in :attr:`hatch_color` (black, or white on a dark fill). An
        open style (labels outside the 12 built-ins) is the bar counterpart
        of an open marker: a light tint of its colour (:data:`OPEN_BAR_TINT`
        of it, the rest white), outlined and hatched in the colour itself, so
        it never looks like a built-in's bar even when the two share colour
        and hatch.

        ``hatch_repeat`` repeats the hatch pattern to make it that many times
        denser: matplotlib draws a hatch at a fixed density per inch, and a
        bar narrower than the spacing of its lines shows none of them
        (:func:`hatch_repeat_for`).
        """
        hatch = self.hatch * max(1, int(hatch_repeat))
        if self.filled:
            look = {"facecolor": self.color, "edgecolor": "black", "hatch": hatch, "linewidth": 0.3}
        else:
            look = {"facecolor": tint(self.color, OPEN_BAR_TINT), "edgecolor": self.color, "hatch": hatch,
                    "linewidth": 0.6}
        if _supports_hatch_color():
            look["hatchcolor"] = self.hatch_color
        elif self.filled:  # before matplotlib 3.10 a hatch takes the outline's colour
            look["edgecolor"] = self.hatch_color
        return look


@functools.cache
def _supports_hatch_color() -> bool:
    """Whether this matplotlib takes ``hatchcolor`` (3.10 and later); asked
    when a bar is drawn, so that importing the report imports no matplotlib."""
    from matplotlib.patches import Patch

    return hasattr(Patch, "set_hatchcolor")

#: CIELAB lightness below which a filled bar is hatched in white, not black:
#: the midpoint, so that the hatch is whichever of the two differs more from
#: the fill (pop, markov, ar, gru4rec, vsknn and vstan get white hatches)
DARK_FILL_LIGHTNESS = 50.0
#: how many matplotlib hatch lines a pattern character draws per inch
HATCH_LINES_PER_INCH = 6
#: the densest a hatch is made for narrow bars (denser patterns fill the bar
#: and read as a flat grey)
MAX_HATCH_REPEAT = 3
#: two bars with the same hatch whose fills differ by at most this much
#: CIELAB lightness are the same grey when printed in grey scale
GREY_LIGHTNESS_TOLERANCE = 10.0


def hatch_repeat_for(bar_width_in: float) -> int:
    """How many times to repeat the built-in hatches (whose patterns have two
    characters: ``"//"``, ``"xx"``) so that their lines lie at most two
    thirds of a bar's width (``bar_width_in`` inches) apart, up to
    :data:`MAX_HATCH_REPEAT`: with fewer, a 0.04 in wide bar (12 models at
    one column's width) is crossed by a hatch line only every other bar
    width, and vertical lines (``"||"``) may miss it altogether."""
    if not bar_width_in > 0:
        return 1
    lines_needed = 1.5 / bar_width_in  # lines per inch: 1.5 per bar width
    return int(min(MAX_HATCH_REPEAT, max(1, np.ceil(lines_needed / (2 * HATCH_LINES_PER_INCH)))))


def lightness(color: str) -> float:
    """CIELAB lightness L* (0 black .. 100 white) of ``#RRGGBB``: its grey value in grey scale."""
    return float(simulate_cvd([color], None)[0, 0])


#: CIELAB lightness above which a line colour gets an outline (yellow #F0E442
#: is 89; the other palette colours are at most 73)
LIGHT_LINE_LIGHTNESS = 80.0
#: the outline of light line colours: a mid grey, dark enough to show the
#: line on white and light enough not to read as a black line
LIGHT_LINE_OUTLINE = "#707070"

#: how much of its colour an open bar's face keeps (the rest is white)
OPEN_BAR_TINT = 0.35


def tint(color: str, amount: float) -> str:
    """``#RRGGBB`` mixed with white: ``amount`` of the colour, ``1 - amount`` of white."""
    mixed = 1.0 - amount * (1.0 - hex_to_rgb(color))
    return "#" + "".join(f"{round(255 * v):02X}" for v in mixed)


def _normalise_label(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def _hash(name: str, what: str, n: int) -> int:
    digest = hashlib.sha256(f"{what}\x1f{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % n


def style_of(label: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Style:
    """The style of one label (see the module docstring); ``overrides`` is the
    suite's ``style:`` map, ``{label: {color, marker, hatch}}``."""
    norm = _normalise_label(label)
    if norm in KNOWN_MODELS:
        slot = KNOWN_MODELS.index(norm)
        style = Style(PALETTE[_SLOT_COLOUR[slot]], MARKERS[slot], HATCHES[slot], True, slot)
    elif norm in SECOND_TIER:
        color, marker, hatch = SECOND_TIER[norm]
        style = Style(color, marker, hatch, False, len(KNOWN_MODELS) + list(SECOND_TIER).index(norm))
    else:
        style = Style(PALETTE[_hash(norm, "colour", len(PALETTE))], MARKERS[_hash(norm, "marker", len(MARKERS))],
                      HATCHES[_hash(norm, "hatch", len(HATCHES))], False, OTHER_SLOT)
    given = (overrides or {}).get(str(label))
    if given:
        style = replace(style, **{k: str(v) for k, v in given.items()})
    return style


def model_styles(labels: Iterable[str], overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Style]:
    """One :class:`Style` per label (each from :func:`style_of`, independent of the others)."""
    return {label: style_of(label, overrides) for label in sorted(set(map(str, labels)))}


def style_collisions(styles: Mapping[str, Style]) -> list[tuple[str, str]]:
    """Pairs of labels drawn alike in some figure: same colour and fill, and
    the same hatch (their bars look alike) or the same marker (their lines
    and points look alike); or the same hatch on bars of about the same grey
    (fill lightness within :data:`GREY_LIGHTNESS_TOLERANCE`), which look
    alike once printed in grey scale whatever their colours."""
    items = sorted(styles.items())
    grey = {label: lightness(st.bar_look()["facecolor"]) for label, st in items}
    out = []
    for i, (a, sa) in enumerate(items):
        for b, sb in items[i + 1:]:
            same_colour = (sa.color.lower(), sa.filled) == (sb.color.lower(), sb.filled)
            if same_colour and (sa.hatch == sb.hatch or sa.marker == sb.marker):
                out.append((a, b))
            elif sa.hatch == sb.hatch and abs(grey[a] - grey[b]) <= GREY_LIGHTNESS_TOLERANCE:
                out.append((a, b))
    return out


def validate_style_map(value: Any, where: str) -> dict[str, dict[str, str]]:
    """Check a suite's ``style:`` map: ``{label: {color: "#RRGGBB", marker: str, hatch: str}}``."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: key 'style': expected a mapping of label -> {{color, marker, hatch}}")
    out: dict[str, dict[str, str]] = {}
    for label, spec in value.items():
        if not isinstance(spec, dict) or not spec:
            raise ConfigError(f"{where}: key {quote('style.' + str(label))}: expected a mapping with color, marker "
                              "and/or hatch")
        for key, v in spec.items():
            if key not in ("color", "marker", "hatch"):
                raise ConfigError(f"{where}: unknown key {quote(f'style.{label}.{key}')}"
                                  f"{did_you_mean(key, ('color', 'marker', 'hatch'))}; expected one of color, marker, hatch")
            if not isinstance(v, str):
                raise ConfigError(f"{where}: key {quote(f'style.{label}.{key}')}: expected a string, got {quote(v)}")
            if key == "color" and not _HEX.match(v):
                raise ConfigError(f"{where}: key {quote(f'style.{label}.color')}: expected #RRGGBB, got {quote(v)}")
            if key == "hatch" and set(v) - set("/\\|-+xoO.*"):
                raise ConfigError(f"{where}: key {quote(f'style.{label}.hatch')}: expected characters of /\\|-+xoO.*, "
                                  f"got {quote(v)}")
            if key == "marker" and not _valid_marker(v):
                raise ConfigError(f"{where}: key {quote(f'style.{label}.marker')}: not a matplotlib marker: {quote(v)}")
        out[str(label)] = {k: str(v) for k, v in spec.items()}
    return out


def _valid_marker(marker: str) -> bool:
    from matplotlib.markers import MarkerStyle

    try:
        MarkerStyle(marker)
    except (ValueError, TypeError):
        return False
    return True


def _ordered(labels: Iterable[str], styles: dict[str, Style]) -> list[str]:
    """Built-in models in their slot order, then the others by name."""
    return sorted(set(labels), key=lambda label: (styles[label].slot, label))


# --------------------------------------------------------------------------- #
# Colour vision deficiency and colour difference (for the palette's tests)
# --------------------------------------------------------------------------- #

#: Machado, Oliveira and Fernandes (2009), severity 1.0, on linear sRGB
CVD_MATRICES: dict[str, np.ndarray] = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868],
                            [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968],
                              [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
}
_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_D65 = np.array([0.95047, 1.0, 1.08883])


def hex_to_rgb(color: str) -> np.ndarray:
    """``#RRGGBB`` -> sRGB in [0, 1], shape [3]."""
    return np.array([int(color[i:i + 2], 16) / 255.0 for i in (1, 3, 5)])


def _linear(rgb: np.ndarray) -> np.ndarray:
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def simulate_cvd(colors: Iterable[str], kind: str | None) -> np.ndarray:
    """CIELAB (D65) ``[n, 3]`` of the colours as seen with ``kind``
    ("deuteranopia", "protanopia", or None for normal vision): the Machado
    matrix applied to linear sRGB, clipped to the gamut."""
    lin = _linear(np.array([hex_to_rgb(c) for c in colors]))
    if kind is not None:
        lin = np.clip(lin @ CVD_MATRICES[kind].T, 0.0, 1.0)
    xyz = lin @ _SRGB_TO_XYZ.T / _D65
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=-1)


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu and Dalal 2005) of CIELAB
    arrays ``[..., 3]`` (broadcast); about 1 is a just-noticeable difference."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, float), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, float), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    both = c1p * c2p != 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh)) * both
    d_l, d_c = L2 - L1, c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_bar, cp_bar, h_sum = (L1 + L2) / 2, (c1p + c2p) / 2, h1p + h2p
    h_bar = np.where(~both, h_sum, np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                                            np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cp_bar, 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def min_pairwise_delta_e(colors: Iterable[str], kind: str | None) -> float:
    """The smallest CIEDE2000 difference between any two of the colours as seen with ``kind``."""
    lab = simulate_cvd(list(colors), kind)
    d = delta_e_2000(lab[:, None, :], lab[None, :, :])
    np.fill_diagonal(d, np.inf)
    return float(d.min())
