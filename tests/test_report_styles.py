"""Model styles: fixed per name, colour-blind-safe palette (CIEDE2000 under simulated
deuteranopia and protanopia), markers and hatches for grey scale, the suite's style map."""

from __future__ import annotations

import re

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.report import styles
from harness.report.styles import KNOWN_MODELS, model_styles, style_of
from harness.run.suites import parse_suite

#: smallest CIEDE2000 difference allowed between two of the 12 built-in colours, in normal
#: vision and under simulated deuteranopia and protanopia (docs/suites-and-reports.md says why)
MIN_DELTA_E = 10.0


def test_delta_e_2000_matches_published_test_pairs():
    # Sharma, Wu and Dalal (2005), Table 1: pairs 1, 7, 17, 25, 33
    pairs = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
             ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
             ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
             ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
             ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.0)]
    for a, b, want in pairs:
        assert styles.delta_e_2000(np.array(a), np.array(b)) == pytest.approx(want, abs=1e-4)
        assert styles.delta_e_2000(np.array(b), np.array(a)) == pytest.approx(want, abs=1e-4)


def test_simulation_keeps_greys_and_merges_red_and_green():
    for kind in (None, "deuteranopia", "protanopia"):
        white, grey = styles.simulate_cvd(["#FFFFFF", "#777777"], kind)
        assert white[0] == pytest.approx(100, abs=0.5) and abs(white[1]) < 1 and abs(white[2]) < 1
        assert abs(grey[1]) < 1.5 and abs(grey[2]) < 1.5
    # a red and a green of similar lightness: far apart normally, close for a deuteranope
    normal = styles.min_pairwise_delta_e(["#C03030", "#5A8A00"], None)
    deut = styles.min_pairwise_delta_e(["#C03030", "#5A8A00"], "deuteranopia")
    assert normal > 40 and deut < normal / 3


@pytest.mark.parametrize("kind", [None, "deuteranopia", "protanopia"])
def test_the_12_built_in_colours_stay_apart(kind):
    colors = [style_of(name).color for name in KNOWN_MODELS]
    assert len(set(colors)) == 12
    assert styles.min_pairwise_delta_e(colors, kind) >= MIN_DELTA_E
    # the pairs that were hard to tell apart before
    for a, b in (("stan", "vstan"), ("sknn", "srgnn"), ("itemknn", "gru4rec")):
        lab = styles.simulate_cvd([style_of(a).color, style_of(b).color], kind)
        assert styles.delta_e_2000(lab[0], lab[1]) >= MIN_DELTA_E


def test_built_ins_differ_in_marker_and_hatch_too():
    built = [style_of(name) for name in KNOWN_MODELS]
    assert len({s.marker for s in built}) == 12 and len({s.hatch for s in built}) == 12
    assert all(s.filled for s in built)


def test_a_style_depends_only_on_the_name():
    alone = style_of("my-plugin")
    for others in ([], ["pop"], ["gru4rec", "srgnn", "zeta"], [f"m{i}" for i in range(30)]):
        assert model_styles(["my-plugin", *others])["my-plugin"] == alone
    assert style_of("SR-GNN") == style_of("srgnn") and style_of("SR-GNN").slot == KNOWN_MODELS.index("srgnn")
    # plugins: open markers, so never drawn like a built-in even with a built-in's colour
    assert not alone.filled and alone.face == "white" and alone.slot == styles.OTHER_SLOT
    assert alone.color in styles.PALETTE and alone.marker in styles.MARKERS


def test_the_later_neural_baselines_have_fixed_distinct_styles():
    later = [style_of(name) for name in styles.SECOND_TIER]
    assert len({s.color for s in later}) == len(later) and len({s.marker for s in later}) == len(later)
    assert not any(s.filled for s in later)  # open markers: never confused with the 12 filled ones
    assert [s.slot for s in later] == list(range(12, 12 + len(later)))
    assert style_of("BPR-MF") == style_of("bprmf")


def test_plugin_styles_rarely_collide_and_collisions_are_reported():
    labels = [f"plugin-{i}" for i in range(40)]
    st = model_styles(labels)
    keys = {(s.color, s.marker, s.hatch) for s in st.values()}
    assert len(keys) >= 36  # 1,728 combinations: a few collisions at most among 40
    same = {"a": styles.Style("#000000", "o", "", False, 12), "b": styles.Style("#000000", "o", "", False, 12)}
    assert styles.style_collisions(same) == [("a", "b")]


def test_plugin_bars_never_look_like_a_built_in_bar():
    # "repeat" hashes to pop's colour (black: a black hatch would not show on it) and "repeat-slow"
    # to markov's colour and hatch; open bars (a tint, outlined and hatched in the colour) tell them apart
    pairs = {"repeat": "pop", "repeat-slow": "markov"}
    for plugin, built_in in pairs.items():
        p, b = style_of(plugin), style_of(built_in)
        assert p.color == b.color
        assert p.bar_look()["facecolor"] != b.bar_look()["facecolor"]
    assert style_of("repeat-slow").hatch == style_of("markov").hatch
    built_in_faces = {style_of(name).bar_look()["facecolor"].upper() for name in KNOWN_MODELS}
    for label in [f"plugin-{i}" for i in range(60)]:
        look = style_of(label).bar_look()
        assert look["facecolor"].upper() not in built_in_faces
        assert look["edgecolor"] == style_of(label).color  # hatch and outline carry the colour
    assert styles.tint("#000000", 0.35) == "#A6A6A6" and styles.tint("#0072B2", 1.0) == "#0072B2"


def test_labels_alike_in_bars_or_in_points_are_reported():
    def st(marker, hatch):
        return styles.Style("#000000", marker, hatch, False, 17)

    found = styles.style_collisions({"a": st("o", "//"), "b": st("s", "//"), "c": st("o", "xx"), "d": st("^", "..")})
    assert found == [("a", "b"), ("a", "c")]  # a-b: same bars; a-c: same points; d differs in both
    filled = styles.Style("#000000", "o", "//", True, 0)
    assert styles.style_collisions({"a": st("o", "//"), "pop": filled}) == []  # open vs filled


def test_suite_style_map_overrides_and_is_validated():
    base = {"datasets": ["synthetic"], "models": ["pop"]}
    suite = parse_suite({**base, "style": {"pop": {"color": "#117733", "marker": "d", "hatch": "//"}}})
    assert suite.style == {"pop": {"color": "#117733", "marker": "d", "hatch": "//"}}
    st = model_styles(["pop", "sr"], suite.style)
    assert (st["pop"].color, st["pop"].marker, st["pop"].hatch) == ("#117733", "d", "//")
    assert st["sr"] == style_of("sr")
    bad = [({"pop": {"colour": "#117733"}}, "unknown key 'style.pop.colour' (did you mean 'color'?)"),
           ({"pop": {"color": "green"}}, "'style.pop.color': expected #RRGGBB"),
           ({"pop": {"marker": "not-a-marker"}}, "style.pop.marker"),
           ({"pop": {"hatch": "ab"}}, "style.pop.hatch"),
           (["pop"], "key 'style': expected a mapping")]
    for style, message in bad:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_suite({**base, "style": style})



def test_hatches_contrast_with_dark_fills_and_stay_dense_on_narrow_bars():
    # the dark built-in fills (pop, markov, ar, vsknn, vstan, gru4rec) get white hatching: black
    # lines on them vanish, above all in grey scale
    for name in KNOWN_MODELS:
        st = style_of(name)
        fill = styles.lightness(st.color)
        assert st.hatch_color == ("white" if fill < styles.DARK_FILL_LIGHTNESS else "black"), name
        hatch = 100.0 if st.hatch_color == "white" else 0.0
        assert abs(hatch - fill) >= 40, name  # whichever of black and white differs more from the fill
    assert {n for n in KNOWN_MODELS if style_of(n).hatch_color == "white"} == {
        "pop", "markov", "ar", "vsknn", "vstan", "gru4rec"}
    look = style_of("vstan").bar_look(2)
    assert look["hatch"] == style_of("vstan").hatch * 2 and look["edgecolor"] in ("black", "white")
    if "hatchcolor" in look:  # matplotlib 3.10+: the outline stays black
        assert look["hatchcolor"] == "white" and look["edgecolor"] == "black"
    assert style_of("my-plugin").hatch_color == style_of("my-plugin").color  # open bars: their colour
    # 12 models at one column's width: bars about 0.04 in wide need the densest hatches; wide bars need none
    assert styles.hatch_repeat_for(0.04) == styles.MAX_HATCH_REPEAT
    assert styles.hatch_repeat_for(0.2) == 1 and styles.hatch_repeat_for(0.0) == 1


def test_same_hatch_on_the_same_grey_is_reported():
    def st(color, hatch, marker="o"):
        return styles.Style(color, marker, hatch, True, 0)

    # different colours, same hatch, fills within 10 L* of each other: alike once printed in grey
    red, green = "#D55E00", "#009E73"  # L* 54 and 58
    assert abs(styles.lightness(red) - styles.lightness(green)) <= styles.GREY_LIGHTNESS_TOLERANCE
    assert styles.style_collisions({"a": st(red, "//"), "b": st(green, "//", "s")}) == [("a", "b")]
    assert styles.style_collisions({"a": st(red, "//"), "b": st(green, "xx", "s")}) == []  # hatches differ
    assert styles.style_collisions({"a": st(red, "//"), "b": st("#1E0FD2", "//", "s")}) == []  # greys apart
    # the built-in styles are all told apart
    assert styles.style_collisions(model_styles([*KNOWN_MODELS, *styles.SECOND_TIER])) == []
