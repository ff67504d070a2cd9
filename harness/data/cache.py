"""The cache of prepared datasets, verified on every read.

:func:`harness.data.specs.load_dataset` keeps each prepared dataset in a folder
``<cache dir>/<name>-<key[:16]>/``::

    train.parquet  train_tr.parquet  valid.parquet  test.parquet   events of each split
    items.parquet                                                  raw item id -> item id
    meta.json      {"format": 2, "name": str, "n_items": int, "meta": {...},
                    "files": {"<file>.parquet": {"sha256": hex, "rows": int}, ...},
                    "meta_sha256": hex}

``meta_sha256`` is the SHA-256 of the canonical JSON of the other entries of
meta.json, so that an edited meta.json (a larger ``n_items``, say) is caught
like an edited Parquet file. A folder that fails any check (a hash, a row
count, a column, a type, an item id out of range) is not trusted: it is
removed and the data are prepared again, with one warning saying why.
Each file is read once: its bytes are hashed and parsed from memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.data.dataset import EVENT_COLUMNS, SPLIT_NAMES, SessionDataset, SessionSplit
from harness.errors import ConfigError

log = logging.getLogger(__name__)

#: Bumped when the folder layout or meta.json changes; older folders re-prepare.
CACHE_FORMAT = 2
META_FILE = "meta.json"
ITEMS_FILE = "items.parquet"
ITEM_COLUMNS = ("raw", "id")
#: the Parquet files of a cache folder, in writing order
DATA_FILES = (*(f"{split}.parquet" for split in SPLIT_NAMES), ITEMS_FILE)
_META_KEYS = ("format", "name", "n_items", "meta", "files", "meta_sha256")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class InvalidCache(Exception):
    """A cache folder failed verification; the message says which check."""


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #


def check_writable(folder: Path, label: str) -> None:
    """Refuse a cache location that cannot hold prepared data.

    ``label`` says where the location came from (``$SESSIONBENCH_CACHE=...``)
    and starts the message. The nearest existing ancestor of ``folder`` must
    be a writable folder; every existing component must be a folder.

    Raises:
        ConfigError: a component is a file, or the folder cannot be written.
    """
    fix = "point it to a writable folder"
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{label}: {probe} is a file, not a folder; {fix}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{label}: {probe} is not writable; {fix}")


def store(data: SessionDataset, target: Path, label: str) -> None:
    """Write ``data`` into a temporary folder beside ``target``, then rename it
    into place, so that an interrupted run leaves no half-written folder.

    A folder of the same key written meanwhile by another process is kept.

    Raises:
        ConfigError: the cache location cannot be written (names ``label``).
    """
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as err:
        raise ConfigError(f"{label}: cannot create {tmp.parent} ({err.strerror or err}); "
                          "point it to a writable folder") from None
    try:
        files = {}
        for split in SPLIT_NAMES:
            files[f"{split}.parquet"] = data.split(split).events
        files[ITEMS_FILE] = pd.DataFrame(
            {"raw": list(data.item_map.keys()), "id": np.fromiter(data.item_map.values(), np.int64)}
        )
        digests = {}
        for name, frame in files.items():
            frame.to_parquet(tmp / name, index=False)
            digests[name] = {"sha256": _sha256((tmp / name).read_bytes()), "rows": len(frame)}
        payload: dict[str, Any] = {"format": CACHE_FORMAT, "name": data.name, "n_items": int(data.n_items),
                                   "meta": data.meta, "files": digests}  # fmt: skip
        payload["meta_sha256"] = _payload_sha256(payload)
        (tmp / META_FILE).write_text(json.dumps(payload, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
            # another process prepared the same data first; its copy is as good
    except OSError as err:
        raise ConfigError(f"{label}: cannot write {target} ({err.strerror or err}); "
                          "point it to a writable folder with free space") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #


def load(target: Path) -> SessionDataset | None:
    """The verified dataset in ``target``, or None when there is none.

    A folder that fails verification is logged (one warning naming the
    folder and the failed check) and removed, and None is returned so that
    the caller prepares the data again.
    """
    if not target.is_dir():
        return None
    try:
        return read(target)
    except InvalidCache as err:
        log.warning("prepared data in %s failed verification (%s); preparing them again", target, err)
        shutil.rmtree(target, ignore_errors=True)
        return None


def read(target: Path) -> SessionDataset:
    """Read and verify a cache folder.

    Raises:
        InvalidCache: meta.json is unreadable or malformed, a file's SHA-256
            or row count differs from meta.json, or the content is
            inconsistent (columns, dtypes, item ids outside 1..n_items).
    """
    payload = _read_meta(target / META_FILE)
    n_items = payload["n_items"]
    frames = {name: _read_parquet(target / name, payload["files"][name]) for name in DATA_FILES}
    splits = {split: _split(frames[f"{split}.parquet"], f"{split}.parquet", n_items) for split in SPLIT_NAMES}
    item_map = _item_map(frames[ITEMS_FILE], n_items)
    return SessionDataset(name=payload["name"], n_items=n_items, item_map=item_map, meta=payload["meta"], **splits)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InvalidCache(f"{META_FILE} unreadable: {err}") from None
    if not isinstance(payload, dict):
        raise InvalidCache(f"{META_FILE} holds a JSON {type(payload).__name__}, expected an object")
    missing = [k for k in _META_KEYS if k not in payload]
    if missing:
        raise InvalidCache(f"{META_FILE} lacks {', '.join(missing)}")
    if payload["format"] != CACHE_FORMAT:
        raise InvalidCache(f"{META_FILE} has format {payload['format']!r}, expected {CACHE_FORMAT}")
    if payload["meta_sha256"] != _payload_sha256(payload):
        raise InvalidCache(f"{META_FILE} was changed after it was written (its meta_sha256 does not match)")
    _expect(isinstance(payload["name"], str), "name", "a string", payload["name"])
    n_items = payload["n_items"]
    _expect(isinstance(n_items, int) and not isinstance(n_items, bool) and n_items >= 1,
            "n_items", "an integer >= 1", n_items)  # fmt: skip
    _expect(isinstance(payload["meta"], dict), "meta", "an object", payload["meta"])
    files = payload["files"]
    _expect(isinstance(files, dict) and sorted(files) == sorted(DATA_FILES), "files",
            f"an object with keys {', '.join(DATA_FILES)}", files)  # fmt: skip
    for name, info in files.items():
        ok = isinstance(info, dict) and set(info) == {"sha256", "rows"}
        ok = ok and isinstance(info["sha256"], str) and bool(_HEX64.fullmatch(info["sha256"]))
        ok = ok and isinstance(info["rows"], int) and not isinstance(info["rows"], bool) and info["rows"] >= 0
        _expect(ok, f"files.{name}", '{"sha256": 64 hex digits, "rows": integer >= 0}', info)
    return payload


def _expect(ok: bool, key: str, expected: str, got: Any) -> None:
    if not ok:
        raise InvalidCache(f"{META_FILE} key {key!r}: expected {expected}, got {json.dumps(got)[:80]}")


def _read_parquet(path: Path, info: dict[str, Any]) -> pd.DataFrame:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InvalidCache(f"{path.name} unreadable: {err.strerror or err}") from None
    if _sha256(raw) != info["sha256"]:
        raise InvalidCache(f"{path.name} has SHA-256 {_sha256(raw)[:12]}..., {META_FILE} records "
                           f"{info['sha256'][:12]}...")  # fmt: skip
    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise InvalidCache(f"{path.name} is not readable Parquet: {type(err).__name__}") from None
    if len(frame) != info["rows"]:
        raise InvalidCache(f"{path.name} has {len(frame)} rows, {META_FILE} records {info['rows']}")
    return frame


def _split(frame: pd.DataFrame, name: str, n_items: int) -> SessionSplit:
    _check_columns(frame, name, dict(zip(EVENT_COLUMNS, ("i", "i", "f"), strict=True)))
    items = frame["item"].to_numpy()
    if len(items) and (items.min() < 1 or items.max() > n_items):
        raise InvalidCache(f"{name} holds item ids outside 1..n_items = 1..{n_items}")
    return SessionSplit(frame)


def _item_map(frame: pd.DataFrame, n_items: int) -> dict[str, int]:
    _check_columns(frame, ITEMS_FILE, {"raw": "O", "id": "i"})
    ids = frame["id"].to_numpy(dtype=np.int64)
    if len(ids) != n_items or not np.array_equal(np.sort(ids), np.arange(1, n_items + 1)):
        raise InvalidCache(f"{ITEMS_FILE} does not map onto the item ids 1..n_items = 1..{n_items}")
    raw = frame["raw"].astype(str).tolist()
    if len(set(raw)) != len(raw):
        raise InvalidCache(f"{ITEMS_FILE} maps one raw item id twice")
    return dict(zip(raw, ids.tolist(), strict=True))


def _check_columns(frame: pd.DataFrame, name: str, kinds: dict[str, str]) -> None:
    """``kinds``: column -> NumPy kind ('i' integer, 'f' float, 'O' strings)."""
    if sorted(frame.columns) != sorted(kinds):
        raise InvalidCache(f"{name} has columns {list(frame.columns)}, expected {list(kinds)}")
    for column, kind in kinds.items():
        dtype = frame[column].dtype
        ok = pd.api.types.is_string_dtype(dtype) if kind == "O" else dtype.kind == kind
        if not ok:
            raise InvalidCache(f"{name} column {column!r} has dtype {dtype}")


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _payload_sha256(payload: dict[str, Any]) -> str:
    rest = {k: v for k, v in payload.items() if k != "meta_sha256"}
    return _sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode("utf-8"))

