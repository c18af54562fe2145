"""bench/gpu.py on its CPU path (no GPU on the developers' or CI's machines): it runs,
prints fp32 and bf16 throughput, the bf16 error and the training epoch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mofsieve.featurization_params import FeaturizationParams
from mofsieve.store import write_shard

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"


@pytest.mark.slow
def test_gpu_bench_runs_on_the_cpu(core_mof_graphs, write_model_dir, tmp_path):
    graphs = core_mof_graphs(12, lambda g: g.n_atoms <= 150)
    write_shard(tmp_path / "g" / "shard-00000.h5", graphs, FeaturizationParams())
    write_model_dir(tmp_path / "m", variant="atten3", readout="attention", members=2)
    done = subprocess.run(
        [sys.executable, str(BENCH), "--model", str(tmp_path / "m"), "--graphs",
         str(tmp_path / "g"), "--n-graphs", "30", "--device", "cpu", "--repeats", "1",
         "--batch-atoms", "2000"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "30 graphs (12 distinct" in out
    assert re.search(r"predict fp32: [\d,]+ MOFs/s", out)
    delta = re.search(r"predict bf16: .*max \|Δprediction\| ([\d.]+) mol/kg", out)
    assert delta and float(delta.group(1)) < 0.5  # bf16 rounds, it does not break the model
    assert re.search(r"training epoch over 12 graphs .*: [\d.]+ s", out)
