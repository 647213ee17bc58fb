"""The one atomic-write helper: an interrupted write leaves the old file (or nothing) and no temporary file."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
import torch

from liif_cli import atomic
from liif_cli.bench import report
from liif_cli.bench.datasets import unpack
from liif_cli.bench.runner import BenchResult, DatasetRun
from liif_cli.models import build_liif, load_checkpoint, save_official
from liif_cli.train.checkpoint import atomic_save


class CtrlC:
    """Pickling this raises KeyboardInterrupt: Ctrl-C arriving in the middle of a checkpoint's bytes."""

    def __reduce__(self):
        raise KeyboardInterrupt


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_interrupted_checkpoint_save_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "last.pth"
    atomic_save({"step": torch.ones(3)}, target)
    with pytest.raises(KeyboardInterrupt):  # a 4 MB tensor is written first, then the interrupt
        atomic_save({"big": torch.zeros(1 << 20), "then": CtrlC()}, target)
    assert _names(tmp_path) == ["last.pth"]
    assert torch.equal(torch.load(target, weights_only=True)["step"], torch.ones(3))


def test_official_checkpoint_is_written_atomically(tmp_path):
    net = build_liif("edsr-baseline")
    path = tmp_path / "m.pth"
    save_official(net, "edsr-baseline", path)
    assert _names(tmp_path) == ["m.pth"] and load_checkpoint(path).encoder == "edsr-baseline"
    with pytest.raises(KeyboardInterrupt):
        save_official(net, "edsr-baseline", path, optimizer={"state": CtrlC()})
    assert _names(tmp_path) == ["m.pth"] and load_checkpoint(path).encoder == "edsr-baseline"


def _result(models: int) -> BenchResult:
    runs = [DatasetRun(f"m{i}", "set5", 5, [2], 1.0, 1.0, 1.0, "cache", None) for i in range(models)]
    return BenchResult("paper", [r.model for r in runs], ["set5"], [], runs, 1.0)


def test_interrupted_bench_report_keeps_the_old_report_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out" / "r.json"
    report.write_json(_result(1), path)
    before = path.read_text()
    assert '"m0"' in before

    def ctrl_c(fd):  # the new report is fully written to its temporary file; Ctrl-C before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        report.write_json(_result(3), path)
    with pytest.raises(KeyboardInterrupt):
        report.write_csv(_result(3), tmp_path / "out" / "r.csv")
    assert _names(path.parent) == ["r.json"] and path.read_text() == before


def test_no_clobber_refuses_an_existing_target_and_cleans_up(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("mine")
    with pytest.raises(atomic.TargetExistsError), atomic.atomic_path(target, overwrite=False) as tmp:
        tmp.write_text("theirs")
    assert _names(tmp_path) == ["a.txt"] and target.read_text() == "mine"


def test_unpacked_folder_appears_whole_or_not_at_all(tmp_path):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (("x.png", b"not checked here"), ("bad/../../escape.png", b"unsafe")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dest = tmp_path / "sets" / "HR"
    with pytest.raises(Exception, match="escape"):
        unpack(archive, dest)
    assert _names(tmp_path / "sets") == []
