"""Downloading the public raw data: ``sessionbench datasets fetch``.

A dataset spec lists the public files its data come from under ``download``
(see ``harness/presets/datasets/README.md``)::

    download:
      - name: yoochoose-100k           # what `sessionbench datasets fetch` calls it
        url: https://.../yoochoose-clicks-100k_test.txt
        size: 414350                   # bytes, where known
        sha256: 3804...                # where known
      - name: yoochoose
        url: https://.../yoochoose-data.7z
        unpack: [yoochoose-clicks.dat] # archive members to keep (zip, 7z, gz)
        manual: steps for a person, printed when the file cannot be fetched by script

Entries of the same ``name`` (from any spec) form one download: its files go
to ``<data folder>/<folder>/`` (``folder`` defaults to the name), which is
where :func:`harness.data.specs.resolve_raw_files` looks for them.

Every file is first written to ``<folder>/.partial/<file>`` (a later fetch
resumes it with an HTTP ``Range`` request), then checked against the
published size and SHA-256, then unpacked or renamed into place. A file that
fails the check is moved to ``<folder>/.rejected/`` and never used. Archive
entries with absolute paths, ``..`` or links are refused before anything is
unpacked. Every failure is a :class:`FetchError` (one line, exit status 2).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import re
import shutil
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from harness import paths
from harness.errors import ConfigError, SessionbenchError, did_you_mean

__all__ = [
    "FetchError",
    "RemoteFile",
    "FileState",
    "parse_download",
    "downloads",
    "resolve_names",
    "fetch",
    "file_state",
    "preset_state",
    "manual_steps",
]

_KEYS = ("name", "folder", "file", "url", "size", "sha256", "unpack", "manual")
_ARCHIVES = (".zip", ".7z", ".gz")
_BLOCK = 1 << 16
_TIMEOUT_S = 60
PARTIAL_DIR = ".partial"
REJECTED_DIR = ".rejected"


class FetchError(SessionbenchError):
    """A download failed: no network, an HTTP error, a checksum mismatch, a
    full disk, an unsafe archive. The message is one line."""


@dataclass(frozen=True)
class RemoteFile:
    """One public file of a download.

    Attributes:
        name: the download's name (``sessionbench datasets fetch NAME``).
        folder: sub-folder of the data folder that receives the files.
        file: the file's published name (also its name in a mirror).
        url: where a script can fetch it; None: only by hand (see ``manual``).
        size: its size in bytes, where published.
        sha256: its SHA-256 (hex), where published.
        unpack: archive members to keep; empty: the file is kept as it is.
        manual: steps for a person, for files a script cannot fetch.
        spec: the spec file that declared it.
    """

    name: str
    folder: str
    file: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    unpack: tuple[str, ...] = ()
    manual: str | None = None
    spec: Path | None = None

    @property
    def provides(self) -> tuple[str, ...]:
        """The file names this entry leaves in the folder."""
        return tuple(PurePosixPath(m).name for m in self.unpack) or (self.file,)


# --------------------------------------------------------------------------- #
# the `download` key of a spec
# --------------------------------------------------------------------------- #


def parse_download(value: Any, spec_name: str, path: Path) -> tuple[RemoteFile, ...]:
    """Validate a spec's ``download`` list; errors name the file and the key."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: key 'download': expected a non-empty list of files, got {value!r}")
    return tuple(_parse_entry(entry, spec_name, path, f"download[{i}]") for i, entry in enumerate(value))


def _parse_entry(entry: Any, spec_name: str, path: Path, key: str) -> RemoteFile:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: key {key!r}: expected a mapping with keys {', '.join(_KEYS)}")
    for k in entry:
        if k not in _KEYS:
            raise ConfigError(f"{path}: unknown key '{key}.{k}'{did_you_mean(k, _KEYS)}; expected one of {', '.join(_KEYS)}")

    def text(k: str, default: str | None = None) -> str | None:
        v = entry.get(k, default)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise ConfigError(f"{path}: key '{key}.{k}': expected a non-empty string, got {v!r}")
        return v.strip() if isinstance(v, str) else v

    name, url, manual = text("name", spec_name), text("url"), text("manual")
    folder = text("folder", name)
    if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{path}: key '{key}.url': expected an http(s) URL, got {url!r}")
    if url is None and manual is None:
        raise ConfigError(f"{path}: key {key!r}: needs 'url' or 'manual' (how to get the file)")
    file = text("file", PurePosixPath(urllib.parse.urlsplit(url).path).name if url else None)
    if file is None:
        raise ConfigError(f"{path}: key '{key}.file': required when there is no 'url'")
    for k, v in (("name", name), ("folder", folder), ("file", file)):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):  # a plain name, never a path
            raise ConfigError(f"{path}: key '{key}.{k}': expected letters, digits, '.', '_' or '-', got {v!r}")
    size = entry.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ConfigError(f"{path}: key '{key}.size': expected a number of bytes, got {size!r}")
    sha = text("sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
        raise ConfigError(f"{path}: key '{key}.sha256': expected 64 hex digits, got {sha!r}")
    unpack = entry.get("unpack", [])
    if isinstance(unpack, str):
        unpack = [unpack]
    if not isinstance(unpack, list) or not all(isinstance(m, str) and m.strip() for m in unpack):
        raise ConfigError(f"{path}: key '{key}.unpack': expected a list of archive member names, got {unpack!r}")
    if unpack and not file.endswith(_ARCHIVES):
        raise ConfigError(f"{path}: key '{key}.unpack': {file!r} is not a {', '.join(_ARCHIVES)} archive")
    if file.endswith(".gz") and len(unpack) > 1:
        raise ConfigError(f"{path}: key '{key}.unpack': a .gz file holds one member, got {unpack!r}")
    return RemoteFile(name=name, folder=folder, file=file, url=url, size=size, sha256=sha.lower() if sha else None,
                      unpack=tuple(m.strip() for m in unpack), manual=manual, spec=path)  # fmt: skip


def downloads(specs_: Iterable[Any] | None = None) -> dict[str, tuple[RemoteFile, ...]]:
    """Every download name -> its files, gathered from the presets (or ``specs_``).

    The same file listed by two specs (say, two presets of one log) is kept
    once; a name whose entries disagree on a file or a folder is a ConfigError.
    """
    from harness.data.specs import list_presets

    out: dict[str, list[RemoteFile]] = {}
    for spec in list_presets() if specs_ is None else specs_:
        for entry in getattr(spec, "download", ()):
            group = out.setdefault(entry.name, [])
            same_file = next((e for e in group if e.file == entry.file), None)
            if same_file is not None:
                if (same_file.folder, same_file.url, same_file.size, same_file.sha256, same_file.unpack) != (
                    entry.folder, entry.url, entry.size, entry.sha256, entry.unpack
                ):
                    raise ConfigError(f"{entry.spec}: download {entry.name!r} file {entry.file!r} differs from "
                                      f"its entry in {same_file.spec}")  # fmt: skip
                continue
            if group and group[0].folder != entry.folder:
                raise ConfigError(f"{entry.spec}: download {entry.name!r}: folder {entry.folder!r} differs from "
                                  f"{group[0].folder!r} in {group[0].spec}")  # fmt: skip
            group.append(entry)
    return {name: tuple(group) for name, group in sorted(out.items())}


def resolve_names(names: Iterable[str], available: Mapping[str, tuple[RemoteFile, ...]]) -> list[str]:
    """Download names for ``names``: a download's own name, or a preset's name
    (the downloads that provide the first accepted file of each of its roles)."""
    from harness.data.specs import list_presets

    presets = {spec.name: spec for spec in list_presets()}
    out: list[str] = []
    for name in names:
        if name in available:
            found = [name]
        elif name in presets:
            wanted = [accepted[0] for accepted in presets[name].files.values()]
            found = [d for d, files in available.items() if any(f in e.provides for e in files for f in wanted)]
            if not found:
                raise FetchError(f"dataset {name!r} has no public download (its files: {', '.join(wanted) or 'none'})")
        else:
            raise FetchError(f"unknown download {name!r}; expected one of {', '.join(available)} or a preset name")
        out += [d for d in found if d not in out]
    return out


# --------------------------------------------------------------------------- #
# state of the files on disk
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class FileState:
    """What is on disk for one file: ``missing``, ``present`` (no published
    checksum to compare), ``verified`` or ``differs`` (size or SHA-256 do not
    match the published ones)."""

    state: str
    path: Path
    detail: str = ""


def file_state(entry: RemoteFile, folder: Path, *, check_hash: bool = True) -> list[FileState]:
    """The state of each file ``entry`` leaves in ``folder``."""
    states = []
    for name in entry.provides:
        target = folder / name
        if not target.is_file():
            states.append(FileState("missing", target))
        elif entry.unpack or (entry.size is None and entry.sha256 is None):
            states.append(FileState("present", target, "no published checksum"))
        else:
            states.append(_compare(entry, target, check_hash))
    return states


def _compare(entry: RemoteFile, target: Path, check_hash: bool) -> FileState:
    size = target.stat().st_size
    if entry.size is not None and size != entry.size:
        return FileState("differs", target, f"size {size}, published {entry.size}")
    if entry.sha256 is None or not check_hash:
        return FileState("present", target, "size matches; no published checksum")
    digest = sha256_of(target)
    if digest != entry.sha256:
        return FileState("differs", target, f"sha256 {digest}, published {entry.sha256}")
    return FileState("verified", target)


def preset_state(spec: Any, data_dir: Path, available: Mapping[str, tuple[RemoteFile, ...]]) -> tuple[str, str]:
    """``(state, detail)`` of a preset's raw files under ``data_dir``:
    ``generated``, ``missing``, ``present`` or ``verified`` (every file matches
    its published SHA-256), or ``differs``."""
    from harness.errors import DataError
    from harness.data.specs import resolve_raw_files

    if not spec.files:
        return "generated", "no raw files"
    try:
        found = resolve_raw_files(spec, data_dir)
    except DataError:
        accepted = {name for names in spec.files.values() for name in names}
        options = [f"{d}{' (by hand)' if all(e.url is None for e in files) else ''}"
                   for d, files in available.items() if any(accepted & set(e.provides) for e in files)]  # fmt: skip
        hint = f"sessionbench datasets fetch {' or '.join(options)}" if options else "see its source"
        return "missing", hint
    states = []
    for path in found.values():
        entry = next((e for files in available.values() for e in files if path.name in e.provides), None)
        states.append(_compare(entry, path, True).state if entry and not entry.unpack and entry.sha256 else "present")
    shown = ", ".join(str(p) for p in found.values())
    if "differs" in states:
        return "differs", shown
    return ("verified" if all(s == "verified" for s in states) else "present"), shown


def sha256_of(path: Path) -> str:
    """The SHA-256 (hex) of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- #
# fetching
# --------------------------------------------------------------------------- #


def manual_steps(entry: RemoteFile, folder: Path) -> str:
    """The steps a person follows for a file a script cannot fetch."""
    text = " ".join((entry.manual or "").split())
    text = text.replace("{folder}", str(folder)).replace("{file}", entry.file)
    return (f"{entry.name}: {entry.file} cannot be fetched by script. {text} "
            f"Then put {', '.join(entry.provides)} into {folder} (or pass the folder holding "
            f"{entry.file} as --mirror to unpack it there).")  # fmt: skip


def fetch(
    names: Iterable[str],
    *,
    data_dir: str | Path | None = None,
    mirror: str | None = None,
    echo: Callable[[str], None] = print,
    progress: bool | None = None,
    available: Mapping[str, tuple[RemoteFile, ...]] | None = None,
) -> list[FileState]:
    """Fetch the named downloads into ``data_dir`` (default: the data folder).

    Each file is skipped when already in place and matching; otherwise it is
    downloaded (resuming a partial download), checked, then unpacked or
    renamed into place. ``mirror`` replaces each file's URL by
    ``<mirror>/<folder>/<file>`` or ``<mirror>/<file>`` (a base URL or a local
    folder). ``progress`` None shows a bar only on a terminal.

    Raises:
        FetchError: at the first failure (one line); files done so far stay.
    """
    available = downloads() if available is None else available
    base = Path(data_dir) if data_dir is not None else paths.data_dir()
    results: list[FileState] = []
    for name in resolve_names(names, available):
        for entry in available[name]:
            results += _fetch_one(entry, base / entry.folder, mirror, echo, progress)
    return results


def _fetch_one(entry: RemoteFile, folder: Path, mirror: str | None, echo: Callable[[str], None],
               progress: bool | None) -> list[FileState]:  # fmt: skip
    states = file_state(entry, folder)
    if all(s.state in ("present", "verified") for s in states):
        for s in states:
            echo(f"{entry.name}: {s.path} already there ({s.state}{', ' + s.detail if s.detail else ''})")
        return states
    changed = [s for s in states if s.state == "differs"]
    if changed:
        s = changed[0]
        raise FetchError(f"{s.path}: exists but does not match the published file ({s.detail}); "
                         "move it away to fetch it again")  # fmt: skip
    sources = _sources(entry, mirror)
    if not sources:
        echo(manual_steps(entry, folder))
        raise FetchError(f"{entry.name}: {entry.file} needs a manual download (steps above)")
    part = folder / PARTIAL_DIR / entry.file
    _mkdir(part.parent)
    try:
        _download(sources, part, entry, progress)
    except FetchError:
        if entry.manual and mirror is None:  # the script failed: say how to get the file by hand
            echo(manual_steps(entry, folder).replace("cannot be fetched by script", "could not be fetched"))
        raise
    _verify(entry, part, folder, echo)
    if entry.unpack:
        _unpack(entry, part, folder)
        part.unlink()
    else:
        os.replace(part, folder / entry.file)  # atomic: never a half-written file under the final name
    _tidy(folder / PARTIAL_DIR)
    if entry.sha256 and not entry.unpack:  # checked above, before the rename
        done = [FileState("verified", folder / entry.file)]
    else:
        done = file_state(entry, folder, check_hash=False)
    for s in done:
        echo(f"{entry.name}: {s.path} fetched ({s.state}{', ' + s.detail if s.detail else ''})")
    return done


def _sources(entry: RemoteFile, mirror: str | None) -> list[str]:
    """Where to read the file, in order: the mirror's two layouts, else the URL."""
    if mirror is None:
        return [entry.url] if entry.url else []
    if urllib.parse.urlsplit(mirror).scheme in ("http", "https"):
        base = mirror.rstrip("/")
        return [f"{base}/{entry.folder}/{entry.file}", f"{base}/{entry.file}"]
    root = Path(mirror)
    if not root.is_dir():
        raise FetchError(f"--mirror {mirror}: expected a base URL (http/https) or an existing folder")
    return [str(root / entry.folder / entry.file), str(root / entry.file)]


def _download(sources: list[str], part: Path, entry: RemoteFile, progress: bool | None) -> None:
    """Fill ``part`` from the first source that has the file."""
    misses = []
    for source in sources:
        if urllib.parse.urlsplit(source).scheme in ("http", "https"):
            if _http_download(source, part, entry, progress):
                return
            misses.append(f"{source} (HTTP 404 Not Found)")
        elif Path(source).is_file():
            _copy_local(Path(source), part, entry, progress)
            return
        else:
            misses.append(f"{source} (no such file)")
    raise FetchError(f"{entry.name}: {entry.file} not found: {'; '.join(misses)}")


def _http_download(url: str, part: Path, entry: RemoteFile, progress: bool | None) -> bool:
    """Download ``url`` into ``part``, resuming it; False on HTTP 404 (try the next source)."""
    start = part.stat().st_size if part.exists() else 0
    if entry.size is not None and start >= entry.size:
        if start == entry.size:
            return True  # complete already; the checksum decides
        part.unlink()
        start = 0
    headers = {"User-Agent": "sessionbench", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return False
        if err.code == 416 and start:  # the partial file is not a prefix of this one: start again
            part.unlink()
            return _http_download(url, part, entry, progress)
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        host = urllib.parse.urlsplit(url).netloc
        raise FetchError(f"{url}: cannot reach {host} ({reason}); check the network or use --mirror") from None
    with response:
        resumed = start and response.status == 206 and _range_start(response) == start
        offset = start if resumed else 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else entry.size
        try:
            _stream(response, part, "ab" if resumed else "wb", offset, total, entry.file, progress)
        except FetchError:
            raise
        except (OSError, EOFError, ConnectionError, TimeoutError) as err:  # includes http.client.IncompleteRead
            raise FetchError(_interrupted(url, part, err)) from None
    got = part.stat().st_size
    if total is not None and got < total:
        raise FetchError(_interrupted(url, part, f"{got} of {total} bytes"))
    return True


def _range_start(response: Any) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _interrupted(url: str, part: Path, why: Any) -> str:
    return (f"{url}: transfer interrupted ({why}); {part.stat().st_size if part.exists() else 0} bytes kept in "
            f"{part}; run the same command again to resume")  # fmt: skip


def _copy_local(source: Path, part: Path, entry: RemoteFile, progress: bool | None) -> None:
    start = part.stat().st_size if part.exists() else 0
    size = source.stat().st_size
    if start > size:
        start = 0
    with source.open("rb") as handle:
        handle.seek(start)
        _stream(handle, part, "ab" if start else "wb", start, size, entry.file, progress)


def _stream(reader: BinaryIO | Any, part: Path, mode: str, offset: int, total: int | None, label: str,
            progress: bool | None) -> None:  # fmt: skip
    from tqdm.auto import tqdm

    disable = None if progress is None else not progress  # None: a bar only on a terminal
    with part.open(mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                                      desc=label, file=sys.stderr, disable=disable, leave=False) as bar:  # fmt: skip
        while True:
            block = reader.read(_BLOCK)
            if not block:
                break
            _write(out, block, part)
            bar.update(len(block))


def _write(handle: BinaryIO, block: bytes, path: Path) -> None:
    """Write one block; a full disk becomes a one-line FetchError."""
    try:
        handle.write(block)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise FetchError(f"{path}: disk full (no space left on device); free some space and run the same "
                             "command again (the partial file is kept and resumed)") from None
        raise FetchError(f"{path}: cannot write ({err.strerror or err})") from None


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FetchError(f"{folder}: cannot create the folder ({err.strerror or err})") from None


def _verify(entry: RemoteFile, part: Path, folder: Path, echo: Callable[[str], None]) -> None:
    """Size and SHA-256 against the published ones; a mismatch is set aside."""
    size = part.stat().st_size
    problem = None
    if entry.size is not None and size != entry.size:
        problem = f"size {size} bytes, expected {entry.size}"
    elif entry.sha256 is not None:
        digest = sha256_of(part)
        if digest != entry.sha256:
            problem = f"sha256 {digest}, expected {entry.sha256}"
    if problem is None:
        if entry.sha256 is None:
            what = "its size only" if entry.size is not None else "nothing (no published size or checksum)"
            echo(f"{entry.name}: note: {entry.file} has no published checksum; checked {what}")
        return
    aside = folder / REJECTED_DIR / f"{entry.file}.{uuid.uuid4().hex[:8]}"
    _mkdir(aside.parent)
    os.replace(part, aside)
    _tidy(part.parent)
    raise FetchError(f"{entry.file}: checksum mismatch ({problem}); the download was set aside at {aside} "
                     "and is not used")  # fmt: skip


def _tidy(folder: Path) -> None:
    try:
        folder.rmdir()  # only when empty
    except OSError:
        pass


# --------------------------------------------------------------------------- #
# unpacking archives safely
# --------------------------------------------------------------------------- #


def _unpack(entry: RemoteFile, archive: Path, folder: Path) -> None:
    """Unpack the wanted members of ``archive`` into ``folder``.

    Every entry's name is checked first (no absolute path, no ``..``, no
    link); members are written into a staging folder inside ``folder`` and
    each is then renamed into place, so a failure leaves no half file.
    """
    staging = folder / f".unpack-{uuid.uuid4().hex[:8]}"
    _mkdir(staging)
    try:
        if entry.file.endswith(".gz"):
            out = staging / PurePosixPath(entry.unpack[0]).name
            try:
                with gzip.open(archive, "rb") as reader, out.open("wb") as handle:
                    for block in iter(lambda: reader.read(_BLOCK), b""):
                        _write(handle, block, out)
            except (OSError, EOFError) as err:
                if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                    raise FetchError(f"{out}: disk full (no space left on device) while unpacking") from None
                raise FetchError(f"{archive}: not a readable gzip file ({err})") from None
            found = {entry.unpack[0]: out}
        elif entry.file.endswith(".zip"):
            found = _unpack_zip(archive, entry.unpack, staging)
        else:
            found = _unpack_7z(archive, entry.unpack, staging)
        for member, path in found.items():
            os.replace(path, folder / PurePosixPath(member).name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_member(name: str, archive: Path, *, is_link: bool = False) -> PurePosixPath:
    """The relative path of an archive entry, or a FetchError for an entry that
    could land outside the target folder (absolute, ``..``, a drive, a link)."""
    text = name.replace("\\", "/")
    pure = PurePosixPath(text)
    if is_link:
        raise FetchError(f"{archive}: entry {name!r} is a link; archives holding links are refused "
                         "(a link can point outside the folder)")  # fmt: skip
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or ".." in pure.parts:
        raise FetchError(f"{archive}: entry {name!r} would land outside the target folder; the archive is refused")
    return pure


def _pick(names: Iterable[str], wanted: tuple[str, ...], archive: Path) -> dict[str, str]:
    """Each wanted member -> the archive entry holding it (same path, or the
    only entry with that file name)."""
    names = list(names)
    picked = {}
    for want in wanted:
        if want in names:
            picked[want] = want
            continue
        hits = [n for n in names if PurePosixPath(n.replace("\\", "/")).name == PurePosixPath(want).name]
        if len(hits) != 1:
            raise FetchError(f"{archive}: expected one entry {want!r}, found {len(hits)} ({', '.join(hits[:5])})")
        picked[want] = hits[0]
    return picked


def _unpack_zip(archive: Path, wanted: tuple[str, ...], staging: Path) -> dict[str, Path]:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                check_member(info.filename, archive, is_link=stat.S_ISLNK(info.external_attr >> 16))
            picked = _pick([i.filename for i in infos if not i.is_dir()], wanted, archive)
            out = {}
            for want, member in picked.items():
                target = staging / f"{len(out)}-{PurePosixPath(member).name}"
                with zf.open(member) as reader, target.open("wb") as handle:
                    for block in iter(lambda: reader.read(_BLOCK), b""):
                        _write(handle, block, target)
                out[want] = target
            return out
    except zipfile.BadZipFile as err:
        raise FetchError(f"{archive}: not a readable zip file ({err})") from None


def _unpack_7z(archive: Path, wanted: tuple[str, ...], staging: Path) -> dict[str, Path]:
    try:
        import py7zr
    except ImportError:  # pragma: no cover - py7zr is a dependency
        raise FetchError(f"{archive}: unpacking .7z needs py7zr (pip install py7zr)") from None
    try:
        with py7zr.SevenZipFile(archive, "r") as zf:
            infos = zf.list()
            for info in infos:
                check_member(info.filename, archive, is_link=bool(getattr(info, "is_symlink", False)))
            picked = _pick([i.filename for i in infos if not i.is_directory], wanted, archive)
            zf.extract(path=staging, targets=list(picked.values()))
    except py7zr.exceptions.ArchiveError as err:
        raise FetchError(f"{archive}: not a readable 7z file ({err})") from None
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise FetchError(f"{staging}: disk full (no space left on device) while unpacking") from None
        raise
    out = {}
    for want, member in picked.items():
        path = staging.joinpath(*check_member(member, archive).parts)
        if path.is_symlink() or not path.is_file() or staging.resolve() not in path.resolve().parents:
            raise FetchError(f"{archive}: entry {member!r} did not unpack to a plain file inside the folder")
        out[want] = path
    return out
