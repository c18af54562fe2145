#!/usr/bin/env bash
# GPU predict throughput (fp32 and bf16) and one training epoch, as one prepared script.
#
#   bash bench/gpu.sh --prepare        # here (CPU machine, project venv): graphs + wheels
#   bash bench/gpu.sh                  # on the GPU machine (its own python3 with torch + PyG)
#
# --prepare featurizes the first $DISTINCT CoRE MOF 2019-ASR CIFs as the shipped 0.15 bar model
# needs into work-data/gpu-graphs and downloads the pure-Python dependencies a GPU image
# usually lacks (ase) into work-data/gpu-wheels; carry both (the device tool's `carry`). The
# run installs the project against that machine's own torch/PyG (no registry there: --no-index,
# --no-deps, --no-build-isolation), then runs bench/gpu.py on $N_GRAPHS graphs, fp32 and bf16.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/co2_298K_0.15bar}
GRAPHS=${GRAPHS:-work-data/gpu-graphs}
WHEELS=${WHEELS:-work-data/gpu-wheels}
DISTINCT=${DISTINCT:-500}
N_GRAPHS=${N_GRAPHS:-20000}
BATCH_ATOMS=${BATCH_ATOMS:-200000}

if [[ ${1:-} == --prepare ]]; then
    py=.venv/bin/python
    rm -rf "$GRAPHS" && mkdir -p "$GRAPHS" "$WHEELS"
    "$py" - "$DISTINCT" "$GRAPHS/cifs.tar" <<'PY'
import io, sys, tarfile
from mofsieve.manifest import iter_archive, package_archive
count, out = int(sys.argv[1]), sys.argv[2]
with tarfile.open(out, "w") as tar:
    for k, (name, data) in enumerate(iter_archive(package_archive("core-mof:2019-ASR"))):
        if k == count:
            break
        info = tarfile.TarInfo(name.rsplit("/", 1)[-1])
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
PY
    .venv/bin/mofsieve featurize "$GRAPHS/cifs.tar" --model "$MODEL" --out "$GRAPHS" \
        --shard-size "$DISTINCT"
    rm -f "$GRAPHS/cifs.tar"
    "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        -d "$WHEELS" "ase==$("$py" -c 'import ase; print(ase.__version__)')"
    du -sh "$GRAPHS" "$WHEELS"
    exit 0
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
venv=${TMPDIR:-/tmp}/mofsieve-gpu-venv
python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --quiet --no-index --no-deps "$WHEELS"/*.whl
"$venv/bin/python" -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
"$venv/bin/python" -c 'import torch, torch_geometric; print("torch", torch.__version__, "PyG", torch_geometric.__version__, "CUDA", torch.cuda.is_available())'
"$venv/bin/python" bench/gpu.py --model "$MODEL" --graphs "$GRAPHS" --n-graphs "$N_GRAPHS" \
    --batch-atoms "$BATCH_ATOMS" --device auto
