#!/usr/bin/env bash
# Prepare, on this machine, what benchmarks/gpu_check.sh needs on a GPU machine that reaches no network and
# receives only the checkout (never ../shared beside it). Run it in the checkout the device tool sends:
#
#   benchmarks/gpu_prepare.sh            # fills .whl/ and .gpu/ (both gitignored; carry both)
#
# .whl/   wheels of the project's dependencies that the GPU image lacks, for its Python 3.12 on x86-64.
#         The image holds torch, numpy, pillow, click, rich, huggingface-hub, tifffile, safetensors and
#         pytest (its package list, read 2026-11-17); of `[project] dependencies` it lacks pypng and tomli-w.
#         gpu_check.sh installs from here, offline, only what its Python really lacks.
# .gpu/shared/   a copy of the reference material the checks read (LIIF_SHARED points there): the official
#         weights, the official-output fixtures and the fixtures' input images (about 26 MiB).
#
# The device tool carries at most 64 MiB of working tree in all; this script fails if these two folders and
# the tracked files together come near that.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SHARED=${LIIF_SHARED:-$ROOT/../shared}
PY=${PYTHON:-python3}
# Pinned to the versions the test venv here uses; one version of each (two would stop the offline install).
WHEELS=("pypng==0.20220715.0" "tomli-w==1.2.0")

rm -rf .whl .gpu
mkdir -p .whl .gpu/shared/weights .gpu/shared/fixtures
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
for whl in .whl/*.whl; do  # each wheel's own needs must be in the image or in .whl too
    unzip -p "$whl" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' | sed "s|^|$(basename "$whl"): |" || true
done

cp "$SHARED/weights/edsr-baseline-liif.pth" .gpu/shared/weights/
cp "$SHARED/fixtures/manifest.json" .gpu/shared/fixtures/
"$PY" - "$SHARED" <<'PY'
import json, shutil, sys
from pathlib import Path
shared, dest = Path(sys.argv[1]), Path(".gpu/shared")
for case in json.loads((shared / "fixtures" / "manifest.json").read_text())["cases"]:
    for rel in (case["file"], case["input"]):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / rel, dest / rel)
PY

tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
carried=$(du -cb .whl .gpu | tail -1 | cut -f1)
total=$(( tracked + ${untracked:-0} + carried ))
ls -l .whl
echo "travels: tracked $((tracked >> 20)) MiB + untracked $(( ${untracked:-0} >> 20 )) MiB + .whl/.gpu $((carried >> 20)) MiB = $((total >> 20)) MiB (limit 64)"
if (( total > 60 << 20 )); then
    echo "gpu_prepare: $((total >> 20)) MiB would travel, too close to the device tool's 64 MiB" >&2
    exit 1
fi
