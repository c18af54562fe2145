from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SHARED_CORE = REPO.parent / "shared" / "data" / "core2019-co2"


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def shared_core() -> Path:
    """The shared CoRE MOF 2019 copy (CIF archive + labels); tests skip when it is absent."""
    if not (SHARED_CORE / "cifs.tar.xz").is_file():
        pytest.skip(f"shared CoRE MOF 2019 data not found at {SHARED_CORE} (developer data only)")
    return SHARED_CORE


# A mofsieve command in a fresh Python process, as a workflow job runs it: prints its exit
# code and, for each part of torch and PyG that lean_imports defers, whether it stayed unrun.
_FRESH_JOB = """
import sys
from mofsieve.cli import main
code = main(sys.argv[1:])
from mofsieve.lean_imports import UNUSED_BY_JOBS, is_deferred
print(code, *[is_deferred(name) for _, name in UNUSED_BY_JOBS])
"""


@pytest.fixture(scope="session")
def fresh_job() -> Callable[[list[str]], list[str]]:
    """``fresh_job(argv)``: run ``mofsieve ARGV`` in a fresh process; its exit code and, per
    deferred module, ``True`` if it was never run (``["0", "True", "True"]`` for a lean job)."""

    def run(argv: list[str]) -> list[str]:
        job = subprocess.run([sys.executable, "-c", _FRESH_JOB, *argv], capture_output=True,
                             text=True, timeout=600)  # fmt: skip
        assert job.returncode == 0, job.stderr
        return job.stdout.split()

    return run


@pytest.fixture(scope="session")
def shipped_ocrystalnet() -> dict[float, Path]:
    """The shipped OCrystalNet CO2 model folders by pressure (bar)."""
    models = Path(__file__).resolve().parents[1] / "models"
    return {p: models / f"co2_298K_{p:g}bar-ocrystalnet" for p in (0.15, 16.0)}


@pytest.fixture(scope="session")
def core_mof_graphs() -> Callable[..., list[Any]]:
    """``core_mof_graphs(count, keep, params=None)``, see :func:`_core_mof_graphs`."""
    return _core_mof_graphs


def _core_mof_graphs(count: int, keep: Callable[[Any], bool], params: Any = None) -> list[Any]:
    """The first ``count`` graphs of the core-mof package's CIFs (real CoRE MOF 2019-ASR
    structures, featurized with ``params``, default: the default featurization) for which
    ``keep(graph)`` holds; skips the test without the package, fails it if fewer exist."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.featurize import featurize_cif
    from mofsieve.manifest import iter_archive, package_archive
    from mofsieve.store import FeaturizationParams
    from mofsieve.structures import StructureError

    found = []
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            graph = featurize_cif(Path(name).stem, name, data, params or FeaturizationParams())
        except StructureError:
            continue
        if keep(graph):
            found.append(graph)
        if len(found) == count:
            return found
    pytest.fail(f"fewer than {count} wanted structures among core-mof's CIFs")


@pytest.fixture(scope="session")
def write_model_dir() -> Callable[..., Any]:
    """``write_model_dir(path, variant="atten3", readout=None, global_features=(), pressure_bar=0.15,
    **featurization)``: a real, untrained model directory written through
    :func:`mofsieve.model.save_model_dir` (weights + model.json), returning its ModelSpec."""
    return _write_model_dir


def _write_model_dir(
    path: Path,
    variant: str = "atten3",
    readout: str | None = None,
    global_features: tuple[str, ...] = (),
    pressure_bar: float = 0.15,
    members: int = 1,
    **featurization: Any,
) -> Any:
    import torch

    from mofsieve.featurization_params import FeaturizationParams
    from mofsieve.model import AECGCNN, save_model_dir, variant_config
    from mofsieve.modeldir import TargetSpec

    overrides: dict[str, Any] = {"global_features": tuple(global_features)}
    if readout is not None:
        overrides["readout"] = readout
    config = variant_config(variant, **overrides)
    torch.manual_seed(0)
    models = [AECGCNN(config).eval() for _ in range(members)]
    params = FeaturizationParams(global_feature_names=tuple(global_features), **featurization)
    return save_model_dir(
        Path(path),
        models,
        featurization=params,
        target=TargetSpec(
            name=f"co2_uptake_mol_per_kg_298K_{pressure_bar:g}bar",
            unit="mol/kg",
            gas="CO2",
            temperature_K=298.0,
            pressure_bar=pressure_bar,
            clip_min=0.0,
        ),
        normalisation_mean=1.0,
        normalisation_std=0.5,
        variant=variant,
    )


@pytest.fixture(scope="session")
def labelled_shard() -> Callable[..., tuple[Path, Path]]:
    """``labelled_shard(root, graphs, params, target, labels)``: ``graphs`` written as
    ``root/graphs/shard-00000.h5`` and ``labels`` (mof_id → value) as ``root/labels.csv``
    with the column ``target``; returns (graph folder, label CSV)."""
    return _labelled_shard


def _labelled_shard(
    root: Path, graphs: list[Any], params: Any, target: str, labels: dict[str, float]
) -> tuple[Path, Path]:
    import csv

    from mofsieve.store import write_shard

    (root / "graphs").mkdir()
    write_shard(root / "graphs" / "shard-00000.h5", graphs, params)
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mof_id", target])
        w.writerows([m, f"{y:.5f}"] for m, y in labels.items())
    return root / "graphs", root / "labels.csv"
