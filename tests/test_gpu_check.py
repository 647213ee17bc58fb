"""benchmarks/gpu_check.sh, the one command a lent GPU machine runs: a step that hangs is cut off at its time
box and recorded, the script goes on and still writes its log and JSON; the summary says which steps held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
DRIVER = ROOT / "benchmarks" / "gpu_check.py"


def _summary(tmp_path, records: list[dict], results: dict[str, dict], junit: dict[str, str] | None = None) -> dict:
    work = tmp_path / "work"
    work.mkdir(parents=True)
    (work / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for name, result in results.items():
        (work / f"{name}.json").write_text(json.dumps(result))
    for name, xml in (junit or {}).items():
        (work / f"{name}.xml").write_text(xml)
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(DRIVER), "summary", "--json", str(out), "--steps", str(work / "steps.jsonl")]
    subprocess.run([*cmd, "--work", str(work), "--mode", "gpu", "--budget", "345"], check=True, capture_output=True)
    return json.loads(out.read_text())


def test_summary_says_which_steps_held(tmp_path):
    def done(name, rc=0):
        return {"name": name, "status": "done", "rc": rc, "seconds": 1.5}

    failing_junit = (
        '<testsuites><testsuite tests="2" failures="1" errors="0" skipped="0">'
        '<testcase classname="tests.test_engine" name="a"/>'
        '<testcase classname="tests.test_engine" name="b"><failure message="x"/></testcase>'
        "</testsuite></testsuites>"
    )
    records = [
        done("env"),
        done("tests_engine"),
        done("parity", rc=1),
        {"name": "speed_1024", "status": "timed out", "rc": 124, "seconds": 150.0},
        done("oomcap"),
        {"name": "bigjob", "status": "not run: budget spent", "rc": None, "seconds": 0},
    ]
    results = {"env": {"ok": True}, "parity": {"ok": False, "max_diff": 3e-5}, "oomcap": {"ok": None}}
    summary = _summary(tmp_path, records, results, {"tests_engine": failing_junit})
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert status == {
        "env": "passed",
        "tests_engine": "failed",
        "parity": "failed",
        "speed_1024": "timed out",
        "oomcap": "skipped",
        "bigjob": "not run: budget spent",
    }
    engine = next(s for s in summary["steps"] if s["name"] == "tests_engine")["result"]
    assert engine["passed"] == 1 and engine["failed"] == ["tests.test_engine::b"]
    assert summary["passed"] is False and summary["budget_s"] == 345

    clean = _summary(tmp_path / "again", [done("env"), done("oomcap")], {"env": {"ok": True}, "oomcap": {"ok": None}})
    assert clean["passed"] is True


@pytest.mark.slow
def test_a_hanging_step_is_cut_off_and_the_script_still_reports(tmp_path):
    """The deps step's interpreter hangs (a wrapper sleeps for that step only): the step's time box, what is
    left of a 25 s budget after the 15 s kept for the summary, ends it; the JSON and log still come out."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\ncase " $* " in *" deps "*) sleep 120;; esac\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=str(python), GPU_CHECK_BUDGET="25", GPU_CHECK_ONLY="deps")
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=90)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((out / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["deps"]["status"] == "timed out" and steps["deps"]["rc"] == 124
    assert 4 <= steps["deps"]["seconds"] <= steps["deps"]["time_box"] + 6
    assert {s["status"] for n, s in steps.items() if n != "deps"} == {"not selected"}
    assert summary["passed"] is False and summary["mode"] == "dry-run" and elapsed < 60
    assert "=== deps (time box" in (out / "gpu_check.log").read_text()
    assert len((out / "gpu_check_steps.jsonl").read_text().splitlines()) == len(steps)
