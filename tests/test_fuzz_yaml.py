"""Fuzzing dataset specs and suites: YAML from a grammar of keys and values.

Documents mix the real keys with unknown ones, values of every YAML type
(and numbers at the edges), duplicate keys, odd encodings and broken
syntax. Loading either gives a spec or suite or a one-line ConfigError;
a spec that loads is prepared too, which works or fails in one line.
See tests/fuzzing.py for the profiles.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import yaml
from fuzzing import REPO, WATCHED, assert_one_line_error, fuzz_settings, no_hang, tree
from hypothesis import event, given
from hypothesis import strategies as st

from harness.data import specs
from harness.run import suites
from harness.errors import SessionbenchError

# -- value grammar ------------------------------------------------------------

numbers = st.one_of(
    st.integers(-3, 12),
    st.sampled_from([0, -1, 2**31, 2**32, 2**53 + 1, 2**63, 10**11, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1e-3", "1/64", "1/0", "0x10", "1e400", "nan", ".inf", "1_000"]),
)
words = st.one_of(
    st.sampled_from(["", " ", "next", "rest", "pop", "sr", "sknn", "gru4rec", "synthetic", "diginetica", "table",
                     "session-rec", "yoochoose", "standard", "srgnn", "presplit", "epoch_s", "iso", "%Y", "..", "../x",
                     "/", "a/b", ".hidden", "x" * 300, "nosuch:Class", ":X", "os:path", "\t"]),
    st.text(max_size=12),
)
scalars = st.one_of(numbers, words, st.booleans(), st.none())


def values(depth: int = 2) -> st.SearchStrategy:
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return st.one_of(scalars, st.lists(inner, max_size=4), st.dictionaries(words, inner, max_size=4))


def mapping(keys: list[str], known: dict[str, st.SearchStrategy], required: tuple[str, ...] = ()) -> st.SearchStrategy:
    """A mapping of known keys (each mostly with its own plausible values) and
    maybe a random one; ``required`` keys are nearly always there."""
    value = {k: st.integers(0, 4).flatmap(lambda i, k=k: known.get(k, values()) if i else values(1)) for k in keys}
    present = st.fixed_dictionaries({k: value[k] for k in required}, optional={
        **{k: value[k] for k in keys if k not in required}, "bogus": values(1)})
    return st.integers(0, 9).flatmap(lambda i: present if i else st.fixed_dictionaries({}, optional=value))


# -- specs ----------------------------------------------------------------------

preprocess = st.one_of(
    mapping(
        ["method", "test_days", "valid_days", "train_fraction", "min_session_length", "min_item_support",
         "filter_iterations"],
        {"method": st.sampled_from(["srgnn", "standard", "standard", "presplit", "x"]), "test_days": numbers,
         "valid_days": numbers, "train_fraction": numbers, "min_session_length": numbers,
         "min_item_support": numbers, "filter_iterations": st.sampled_from([1, 3, 100000000, 0, -1, "2"])},
        required=("method",),
    ),
    values(1),
)
generator = mapping(
    ["n_sessions", "n_items", "seed", "days", "max_length", "mean_length", "zipf_exponent", "n_communities"],
    {"n_sessions": st.one_of(st.integers(-2, 300), numbers), "n_items": st.one_of(st.integers(-2, 60), numbers),
     "seed": numbers, "days": st.one_of(st.sampled_from([1, 5, 30]), numbers),
     "max_length": st.one_of(st.integers(0, 20), numbers), "mean_length": numbers},
    required=("n_sessions", "n_items", "seed", "days"),
)
spec_documents = mapping(
    ["name", "description", "source", "format", "files", "folders", "read", "generator", "preprocess"],
    {
        "name": st.one_of(st.just("fuzz"), words),
        "description": st.just("d"),
        "source": st.just("s"),
        "format": st.sampled_from(["table", "session-rec", "synthetic", "diginetica", "yoochoose", "nope"]),
        "files": st.one_of(
            st.fixed_dictionaries({"events": st.sampled_from(["events.csv", "missing.csv", "../events.csv", ""])}),
            mapping(["events", "train", "test", "valid", "train_tr"], {}),
        ),
        "read": mapping(["sep", "session", "item", "time", "time_format"],
                        {"sep": st.sampled_from([",", "\t", '"', "\n", "ab", ""]),
                         "time_format": st.sampled_from(["epoch_s", "epoch_ms", "iso", "%Y-%m-%d", "%", "bad"])}),
        "generator": generator,
        "preprocess": preprocess,
    },
    required=("name", "description", "source", "format", "preprocess"),
)

VALID_SPECS = [
    {"name": "fuzz", "description": "d", "source": "s", "format": "table", "files": {"events": "events.csv"},
     "read": {"sep": ",", "session": "session", "item": "item", "time": "time", "time_format": "epoch_s"},
     "preprocess": {"method": "standard", "test_days": 1, "valid_days": 1, "min_session_length": 2,
                    "min_item_support": 1, "filter_iterations": 1}},
    {"name": "fuzz-synthetic", "description": "d", "source": "s", "format": "synthetic",
     "generator": {"n_sessions": 200, "n_items": 30, "seed": 0, "days": 5, "max_length": 10, "mean_length": 3.0},
     "preprocess": {"method": "standard", "test_days": 1, "valid_days": 1, "min_item_support": 2}},
]
VALID_SUITE = {"name": "fuzz", "description": "d", "datasets": ["synthetic"],
               "models": ["pop", {"name": "sr", "label": "sr-x", "params": {"pruning": 5}, "grid": {"steps": [2, 4]},
                                  "seeds": [0, 1]}],
               "seeds": [0], "ks": [5, 20], "protocols": ["next"], "batch_size": 100, "exclude_seen": False,
               "latency": {"samples": 10, "warmup": 1}}


def _paths(document, prefix=()) -> list[tuple]:
    """Every key path of a nested document (lists by index)."""
    found = []
    items = document.items() if isinstance(document, dict) else enumerate(document) if isinstance(document, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found += _paths(value, (*prefix, key))
    return found


@st.composite
def near_valid(draw, documents: list[dict]) -> dict:
    """A valid document with one or two things changed: a value replaced, a key dropped or added."""
    import copy

    document = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(0, 2))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "replace":
            current = parent[path[-1]]
            alike = (st.integers(-3, 10**6) if isinstance(current, int) and not isinstance(current, bool)
                     else st.floats(-10, 1e6) if isinstance(current, float) else words if isinstance(current, str)
                     else values(1))
            parent[path[-1]] = draw(st.one_of(alike, alike, numbers, values(1)))
        elif action == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(words)] = draw(values(1))
        else:
            parent.append(draw(values(1)))
    return document


EVENTS = "session,item,time\n" + "".join(
    f"{s},{(s * 3 + j) % 7},{1_400_000_000 + s * 20_000 + j}\n" for s in range(1, 40) for j in range(3)
)


@st.composite
def yaml_bytes(draw, documents: st.SearchStrategy) -> bytes:
    """A document dumped as YAML, then maybe damaged: a repeated key, a stray byte, a cut."""
    document = draw(documents)
    try:
        text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, OverflowError):
        text = repr(document)
    damage = draw(st.integers(0, 15))  # mostly undamaged
    if damage == 0 and document:
        key = draw(st.sampled_from(sorted(map(str, document))))
        text += f"{key}: again\n"  # a duplicate key
    elif damage == 1:
        text = text[: draw(st.integers(0, len(text)))]
    elif damage == 2:
        text = text.replace(":", draw(st.sampled_from(["", ": [", ":\t", "::"])), 1)
    data = text.encode("utf-8")
    if damage == 3:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xe9", b"\x00", b"\x07", b"\xef\xbb\xbf"])) + data[at:]
    elif damage == 4:
        data = text.encode("utf-16")
    return data


@fuzz_settings(60)
@given(data=st.one_of(yaml_bytes(spec_documents), yaml_bytes(near_valid(VALID_SPECS))))
def test_fuzz_spec_yaml(data):
    before = tree(*WATCHED)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "events.csv").write_text(EVENTS)
        path = base / "spec.yaml"
        path.write_bytes(data)
        with no_hang(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                spec = specs.load_spec(path)
                specs.load_dataset(spec, data_dir=base, cache_dir=base / "cache")
                event("prepared")
            except SessionbenchError as err:
                assert_one_line_error(str(err))
                event(f"{type(err).__name__}: {'spec' if str(err).startswith(str(path)) else 'data'}")
        written = {p for p in base.rglob("*") if p.is_file()} - {base / "events.csv", path}
        assert all(base / "cache" in p.parents for p in written), written
    assert tree(*WATCHED) == before


# -- suites ---------------------------------------------------------------------

model_entries = st.one_of(
    st.sampled_from(["pop", "spop", "sr", "sknn", "gru4rec", "srgnn", "nosuch", "nosuch:Class", ":X", "a..b:C", ""]),
    mapping(
        ["name", "label", "params", "grid", "seeds"],
        {
            "name": st.sampled_from(["pop", "spop", "sr", "sknn", "gru4rec", "srgnn", "nosuch"]),
            "label": st.one_of(words, st.text(alphabet="ab_.-", min_size=1, max_size=300)),
            "params": st.dictionaries(st.sampled_from(["steps", "k", "epochs", "batch_size", "tiebreak", "lr",
                                                       "weighting", "x"]), scalars, max_size=3),
            "grid": st.dictionaries(st.sampled_from(["steps", "k", "epochs", "pruning", "weighting"]),
                                    st.one_of(st.lists(scalars, max_size=12), scalars), max_size=4),
            "seeds": st.one_of(st.lists(numbers, max_size=3), numbers),
        },
        required=("name",),
    ),
    values(1),
)
suite_documents = mapping(
    ["name", "description", "data_dir", "datasets", "models", "seeds", "ks", "protocols", "batch_size",
     "exclude_seen", "latency"],
    {
        "name": words,
        "datasets": st.lists(st.one_of(st.sampled_from(["synthetic", "diginetica", "nosuch", "x.yaml"]),
                                       mapping(["name", "data_dir"], {"name": words, "data_dir": words})),
                             max_size=3),
        "models": st.lists(model_entries, max_size=4),
        "seeds": st.one_of(st.lists(numbers, max_size=3), numbers),
        "ks": st.one_of(st.lists(numbers, max_size=4), numbers),
        "protocols": st.one_of(st.lists(st.sampled_from(["next", "rest", "all"]), max_size=3), words),
        "batch_size": numbers,
        "exclude_seen": scalars,
        "latency": mapping(["samples", "warmup"], {"samples": numbers, "warmup": numbers}),
    },
    required=("datasets", "models"),
)


@fuzz_settings(80)
@given(data=st.one_of(yaml_bytes(suite_documents), yaml_bytes(near_valid([VALID_SUITE]))))
def test_fuzz_suite_yaml(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "suite.yaml"
        path.write_bytes(data)
        with no_hang():
            try:
                suite = suites.load_suite(path)
            except SessionbenchError as err:
                assert_one_line_error(str(err))
                event(type(err).__name__)
                return
    event("loaded")
    # what a loaded suite may later write stays inside reports/
    reports = (REPO / "reports").resolve()
    assert reports in (reports / suite.name).resolve().parents
    for model in suite.models:
        for point in model.grid_points():
            label = model.label + "[" + ",".join(f"{k}={point[k]}" for k in sorted(model.grid)) + "]"
            assert "/" not in label and len(label) < 200
