"""`sessionbench datasets fetch`: downloads from a real HTTP server on
127.0.0.1 (with Range support), resuming, checksums, archives, mirrors and
one-line failures. No test reaches the internet."""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.server
import io
import os
import pathlib
import socket
import stat
import threading
import zipfile
from pathlib import Path

import py7zr
import pytest
from data_paths import DATA_ROOT

from harness.data import fetch
from harness.cli import main
from harness.errors import ConfigError
from harness.data.fetch import FetchError, parse_download

PAYLOAD = b"".join(b"%d\t%d\t%d.5\n" % (i // 7, 214536500 + i % 97, 1396860000 + i) for i in range(20_000))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A file server on 127.0.0.1: ``files`` maps a URL path to bytes;
    ``cut`` maps a path to the byte count after which the connection drops
    (the headers still announce the whole length)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes=") and ranged.endswith("-"):
                    start = int(ranged[6:-1])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                limit = server.cut.pop(self.path, None)
                self.wfile.write(body[start:] if limit is None else body[start:start + limit])
                if limit is not None:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with Server() as s:
        yield s


def entries(spec_path: Path, name: str, *items: dict) -> dict[str, tuple[fetch.RemoteFile, ...]]:
    """A download built through the spec parser, as a preset would declare it."""
    return {name: parse_download([dict(item) for item in items], name, spec_path)}


def run_cli(capsys, monkeypatch, available, *argv):
    monkeypatch.setattr(fetch, "downloads", lambda specs_=None: available)
    code = main(["datasets", "fetch", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- #
# downloading, resuming, checking
# --------------------------------------------------------------------------- #


def test_download_checks_and_renames_into_place(server, tmp_path, capsys):
    server.files["/clicks.txt"] = PAYLOAD
    available = entries(tmp_path / "s.yaml", "mini",
                        {"url": f"{server.url}/clicks.txt", "size": len(PAYLOAD), "sha256": sha(PAYLOAD)})
    states = fetch.fetch(["mini"], data_dir=tmp_path / "data", available=available, progress=True)
    target = tmp_path / "data" / "mini" / "clicks.txt"
    assert target.read_bytes() == PAYLOAD
    assert [s.state for s in states] == ["verified"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["clicks.txt"]  # no partial left behind
    err = capsys.readouterr().err
    assert "clicks.txt" in err and "B/s" in err  # the progress bar went to stderr
    assert fetch.file_state(available["mini"][0], target.parent)[0].state == "verified"
    fetch.fetch(["mini"], data_dir=tmp_path / "data", available=available)  # already there: no request
    assert len(server.requests) == 1
    assert "already there (verified)" in capsys.readouterr().out


def test_an_interrupted_transfer_is_resumed_with_a_range_request(server, tmp_path):
    server.files["/clicks.txt"] = PAYLOAD
    server.cut["/clicks.txt"] = 100_000
    available = entries(tmp_path / "s.yaml", "mini",
                        {"url": f"{server.url}/clicks.txt", "size": len(PAYLOAD), "sha256": sha(PAYLOAD)})
    with pytest.raises(FetchError, match="interrupted.*run the same command again to resume"):
        fetch.fetch(["mini"], data_dir=tmp_path, available=available)
    part = tmp_path / "mini" / ".partial" / "clicks.txt"
    assert part.stat().st_size == 100_000
    assert not (tmp_path / "mini" / "clicks.txt").exists()
    fetch.fetch(["mini"], data_dir=tmp_path, available=available)
    assert server.requests == [("/clicks.txt", None), ("/clicks.txt", "bytes=100000-")]
    assert (tmp_path / "mini" / "clicks.txt").read_bytes() == PAYLOAD
    assert not part.parent.exists()


def test_a_checksum_mismatch_is_set_aside_and_never_used(server, tmp_path, capsys, monkeypatch):
    server.files["/clicks.txt"] = PAYLOAD
    wrong = {"url": f"{server.url}/clicks.txt", "sha256": sha(b"something else")}
    code, out, err = run_cli(capsys, monkeypatch, entries(tmp_path / "s.yaml", "mini", wrong),
                             "mini", "--data-dir", str(tmp_path))  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "checksum mismatch" in err and sha(PAYLOAD) in err
    folder = tmp_path / "mini"
    assert not (folder / "clicks.txt").exists() and not (folder / ".partial").exists()
    [aside] = (folder / ".rejected").iterdir()
    assert aside.read_bytes() == PAYLOAD and str(aside) in err
    # the next try starts afresh: nothing is resumed from the rejected file
    right = {"url": f"{server.url}/clicks.txt", "sha256": sha(PAYLOAD)}
    fetch.fetch(["mini"], data_dir=tmp_path, available=entries(tmp_path / "s.yaml", "mini", right))
    assert server.requests[-1] == ("/clicks.txt", None)
    assert (folder / "clicks.txt").read_bytes() == PAYLOAD


def test_a_wrong_size_is_a_mismatch_too(server, tmp_path):
    server.files["/clicks.txt"] = PAYLOAD[:-10]
    available = entries(tmp_path / "s.yaml", "mini", {"url": f"{server.url}/clicks.txt", "size": len(PAYLOAD)})
    with pytest.raises(FetchError, match=f"size {len(PAYLOAD) - 10} bytes, expected {len(PAYLOAD)}"):
        fetch.fetch(["mini"], data_dir=tmp_path, available=available)


def test_http_404_is_one_line_with_exit_status_2(server, tmp_path, capsys, monkeypatch):
    available = entries(tmp_path / "s.yaml", "mini", {"url": f"{server.url}/gone.txt"})
    code, _, err = run_cli(capsys, monkeypatch, available, "mini", "--data-dir", str(tmp_path))
    assert code == 2
    assert err.strip().splitlines() == [f"sessionbench: error: mini: gone.txt not found: {server.url}/gone.txt "
                                        "(HTTP 404 Not Found)"]  # fmt: skip


def test_no_network_is_one_line_with_exit_status_2(tmp_path, capsys, monkeypatch):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    available = entries(tmp_path / "s.yaml", "mini", {"url": f"http://127.0.0.1:{port}/clicks.txt"})
    code, _, err = run_cli(capsys, monkeypatch, available, "mini", "--data-dir", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"cannot reach 127.0.0.1:{port}" in err and "--mirror" in err


def test_a_full_disk_is_one_line_and_keeps_the_partial_file(server, tmp_path, capsys, monkeypatch):
    server.files["/clicks.txt"] = PAYLOAD
    real_open = pathlib.Path.open

    class FullDisk(io.RawIOBase):
        """Accepts 64 KiB, then fails as a full disk does."""

        def __init__(self, handle):
            self.handle, self.room = handle, 1 << 16

        def write(self, block):
            if len(block) > self.room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(block)
            return self.handle.write(block)

        def close(self):
            self.handle.close()
            super().close()

    def open_(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        return FullDisk(handle) if ".partial" in self.parts and ("a" in mode or "w" in mode) else handle

    monkeypatch.setattr(pathlib.Path, "open", open_)
    available = entries(tmp_path / "s.yaml", "mini", {"url": f"{server.url}/clicks.txt", "sha256": sha(PAYLOAD)})
    code, _, err = run_cli(capsys, monkeypatch, available, "mini", "--data-dir", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "disk full" in err and "partial file is kept" in err
    assert (tmp_path / "mini" / ".partial" / "clicks.txt").stat().st_size == 1 << 16
    assert not (tmp_path / "mini" / "clicks.txt").exists()


def test_a_present_file_that_differs_is_not_overwritten(server, tmp_path):
    server.files["/clicks.txt"] = PAYLOAD
    (tmp_path / "mini").mkdir()
    (tmp_path / "mini" / "clicks.txt").write_bytes(b"edited by hand")
    available = entries(tmp_path / "s.yaml", "mini", {"url": f"{server.url}/clicks.txt", "sha256": sha(PAYLOAD)})
    with pytest.raises(FetchError, match="does not match the published file"):
        fetch.fetch(["mini"], data_dir=tmp_path, available=available)
    assert (tmp_path / "mini" / "clicks.txt").read_bytes() == b"edited by hand" and not server.requests


def test_a_file_without_published_checksum_is_fetched_with_a_note(server, tmp_path, capsys):
    server.files["/clicks.txt"] = PAYLOAD
    available = entries(tmp_path / "s.yaml", "mini", {"url": f"{server.url}/clicks.txt"})
    fetch.fetch(["mini"], data_dir=tmp_path, available=available)
    assert "no published checksum; checked nothing" in capsys.readouterr().out
    assert fetch.file_state(available["mini"][0], tmp_path / "mini")[0].state == "present"


# --------------------------------------------------------------------------- #
# mirrors and manual downloads
# --------------------------------------------------------------------------- #


def test_mirror_url_and_mirror_folder(server, tmp_path):
    item = {"url": "https://example.invalid/data/clicks.txt", "size": len(PAYLOAD), "sha256": sha(PAYLOAD)}
    available = entries(tmp_path / "s.yaml", "mini", item)
    server.files["/base/mini/clicks.txt"] = PAYLOAD  # the data folder's layout
    fetch.fetch(["mini"], data_dir=tmp_path / "a", mirror=f"{server.url}/base/", available=available)
    assert (tmp_path / "a" / "mini" / "clicks.txt").read_bytes() == PAYLOAD
    server.files["/flat/clicks.txt"] = PAYLOAD  # or flat: the same file names
    fetch.fetch(["mini"], data_dir=tmp_path / "b", mirror=f"{server.url}/flat", available=available)
    assert server.requests[-2:] == [("/flat/mini/clicks.txt", None), ("/flat/clicks.txt", None)]
    local = tmp_path / "local"
    local.mkdir()
    (local / "clicks.txt").write_bytes(PAYLOAD)
    fetch.fetch(["mini"], data_dir=tmp_path / "c", mirror=str(local), available=available)
    assert (tmp_path / "c" / "mini" / "clicks.txt").read_bytes() == PAYLOAD
    with pytest.raises(FetchError, match="expected a base URL"):
        fetch.fetch(["mini"], data_dir=tmp_path / "d", mirror=str(tmp_path / "nowhere"), available=available)


def test_a_manual_download_prints_the_steps(tmp_path, capsys, monkeypatch):
    item = {"file": "dump.zip", "unpack": ["views.csv"], "manual": "Log in at the competition page and download {file}."}
    available = entries(tmp_path / "s.yaml", "full", item)
    code, out, err = run_cli(capsys, monkeypatch, available, "full", "--data-dir", str(tmp_path / "data"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "manual download" in err
    assert "Log in at the competition page and download dump.zip." in out
    assert f"put views.csv into {tmp_path / 'data' / 'full'}" in out
    # with the archive at hand, --mirror unpacks it
    hand = tmp_path / "hand"
    hand.mkdir()
    with zipfile.ZipFile(hand / "dump.zip", "w") as zf:
        zf.writestr("dump/views.csv", PAYLOAD)
        zf.writestr("dump/other.csv", b"x")
    code, out, _ = run_cli(capsys, monkeypatch, available, "full", "--data-dir", str(tmp_path / "data"),
                           "--mirror", str(hand))  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "data" / "full").iterdir()) == ["views.csv"]
    assert (tmp_path / "data" / "full" / "views.csv").read_bytes() == PAYLOAD


def test_unknown_names_are_one_line_errors(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(capsys, monkeypatch, {}, "nope", "--data-dir", str(tmp_path))
    assert code == 2 and "unknown download 'nope'" in err


# --------------------------------------------------------------------------- #
# archives
# --------------------------------------------------------------------------- #


def _zip(entries_: dict[str, bytes], links: dict[str, str] = {}) -> bytes:  # noqa: B006
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries_.items():
            zf.writestr(name, data)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def _7z(tmp_path: Path, entries_: dict[str, bytes]) -> bytes:
    path = tmp_path / "made.7z"
    with py7zr.SevenZipFile(path, "w") as zf:
        for name, data in entries_.items():
            zf._writestr(data, name)  # the public writestr refuses unsafe names; the test needs them
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["zip", "gz", "7z"])
def test_archives_are_unpacked(server, tmp_path, kind):
    body = {"zip": lambda: _zip({"data/clicks.dat": PAYLOAD, "data/buys.dat": b"b"}),
            "gz": lambda: gzip.compress(PAYLOAD),
            "7z": lambda: _7z(tmp_path, {"data/clicks.dat": PAYLOAD, "data/buys.dat": b"b"})}[kind]()
    server.files[f"/dump.{kind}"] = body
    item = {"url": f"{server.url}/dump.{kind}", "size": len(body), "sha256": sha(body), "unpack": ["clicks.dat"]}
    fetch.fetch(["mini"], data_dir=tmp_path / "data", available=entries(tmp_path / "s.yaml", "mini", item))
    folder = tmp_path / "data" / "mini"
    assert sorted(p.name for p in folder.iterdir()) == ["clicks.dat"]  # archive, staging, partials gone
    assert (folder / "clicks.dat").read_bytes() == PAYLOAD


UNSAFE = {
    "dot-dot": ("../evil.txt", "would land outside"),
    "deep dot-dot": ("data/../../evil.txt", "would land outside"),
    "absolute": ("/tmp/evil.txt", "would land outside"),
    "drive": ("C:/evil.txt", "would land outside"),
}


@pytest.mark.parametrize("kind", ["zip", "7z"])
@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archive_entries_are_refused(server, tmp_path, kind, case):
    member, message = UNSAFE[case]
    files = {"data/clicks.dat": PAYLOAD, member: b"evil"}
    body = _zip(files) if kind == "zip" else _7z(tmp_path, files)
    server.files[f"/dump.{kind}"] = body
    item = {"url": f"{server.url}/dump.{kind}", "unpack": ["clicks.dat"]}
    with pytest.raises(FetchError, match=message):
        fetch.fetch(["mini"], data_dir=tmp_path / "data", available=entries(tmp_path / "s.yaml", "mini", item))
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/tmp/evil.txt").exists()
    assert not (tmp_path / "data" / "mini" / "clicks.dat").exists()


def test_archive_links_are_refused(server, tmp_path):
    server.files["/dump.zip"] = _zip({"data/clicks.dat": PAYLOAD}, links={"data/link": "../../../etc/passwd"})
    item = {"url": f"{server.url}/dump.zip", "unpack": ["clicks.dat"]}
    with pytest.raises(FetchError, match="'data/link' is a link"):
        fetch.fetch(["mini"], data_dir=tmp_path, available=entries(tmp_path / "s.yaml", "mini", item))
    assert not (tmp_path / "mini" / "clicks.dat").exists()


def test_7z_links_are_refused(server, tmp_path):
    (tmp_path / "clicks.dat").write_bytes(PAYLOAD)
    os.symlink("/etc/passwd", tmp_path / "link")
    with py7zr.SevenZipFile(tmp_path / "made.7z", "w") as zf:
        zf.write(tmp_path / "clicks.dat", "clicks.dat")
        zf.write(tmp_path / "link", "link")
    server.files["/dump.7z"] = (tmp_path / "made.7z").read_bytes()
    item = {"url": f"{server.url}/dump.7z", "unpack": ["clicks.dat"]}
    with pytest.raises(FetchError, match="'link' is a link"):
        fetch.fetch(["mini"], data_dir=tmp_path / "data", available=entries(tmp_path / "s.yaml", "mini", item))


def test_a_missing_member_is_named(server, tmp_path):
    server.files["/dump.zip"] = _zip({"data/buys.dat": b"b"})
    item = {"url": f"{server.url}/dump.zip", "unpack": ["clicks.dat"]}
    with pytest.raises(FetchError, match="expected one entry 'clicks.dat', found 0"):
        fetch.fetch(["mini"], data_dir=tmp_path, available=entries(tmp_path / "s.yaml", "mini", item))


# --------------------------------------------------------------------------- #
# the `download` key and the shipped presets
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("item, message", [
    ({"url": "ftp://host/x.txt"}, r"download\[0\].url': expected an http\(s\) URL"),
    ({"file": "x.txt"}, r"download\[0\]': needs 'url' or 'manual'"),
    ({"url": "https://h/x.txt", "sha256": "abc"}, r"download\[0\].sha256': expected 64 hex digits"),
    ({"url": "https://h/x.txt", "size": -1}, r"download\[0\].size': expected a number of bytes"),
    ({"url": "https://h/x.txt", "unpack": ["a"]}, r"download\[0\].unpack': 'x.txt' is not a"),
    ({"url": "https://h/x.txt", "colour": 1}, r"unknown key 'download\[0\].colour'"),
    ({"url": "https://h/x.txt", "sha265": "0" * 64}, r"unknown key 'download\[0\].sha265' \(did you mean 'sha256'\?\)"),
    ({"url": "https://h/x.txt", "file": "../x.txt"}, r"download\[0\].file': expected letters"),
])
def test_bad_download_entries_name_the_file_and_key(tmp_path, item, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_download([item], "mini", tmp_path / "mini.yaml")
    assert str(err.value).startswith(str(tmp_path / "mini.yaml"))


def test_shipped_downloads_cover_the_samples_and_the_full_logs():
    available = fetch.downloads()
    assert {"yoochoose-100k", "diginetica-sample", "diginetica", "yoochoose", "raw-samples"} <= set(available)
    for name in ("yoochoose-100k", "diginetica-sample", "raw-samples"):
        for entry in available[name]:  # the samples: pinned raw URLs, size and checksum
            assert entry.url.startswith("https://raw.githubusercontent.com/") and entry.size and entry.sha256
    assert available["diginetica"][0].url is None and "codalab" in available["diginetica"][0].manual
    assert available["yoochoose"][0].provides == ("yoochoose-clicks.dat",)
    assert fetch.resolve_names(["yoochoose-1-64", "yoochoose-1-4"], available) == ["yoochoose"]


@pytest.mark.data("yoochoose-100k", "diginetica-sample", "raw-samples")
def test_the_shipped_checksums_match_the_real_files(tmp_path, capsys):
    """Fetching from the data folder as a mirror verifies every published size and SHA-256."""
    fetch.fetch(["yoochoose-100k", "diginetica-sample", "raw-samples"], data_dir=tmp_path, mirror=str(DATA_ROOT))
    out = capsys.readouterr().out
    assert out.count("fetched (verified)") == 7, out
