"""What a model's test-split accuracy becomes when the CIFs come without partial charges.

    .venv/bin/python bench/charges_at_prediction.py --model models/co2_298K_0.15bar [--threads 1]

The test MOFs of the model's ``split.csv`` (never used to train or select it) are read from
``../shared/data/core2019-co2/cifs.tar.xz`` (charged CoRE MOF 2019) and each is written twice
as a P1 CIF by the project's own writer: with its charges, and without them (the charge
column left out, as in the ``core-mof`` package's CIFs and most hypothetical MOFs). Both sets
are featurized as the model's ``model.json`` says (with ``charges: cif_or_model`` the
uncharged copies get the shipped charge model's charges) and predicted by the model; printed
side by side against ``labels.csv``: MAE, Spearman and top-10 % recall, and the mean absolute
difference between the two predictions of each MOF.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

from mofsieve.featurize import featurize_cif
from mofsieve.manifest import iter_archive, mof_id_of
from mofsieve.metrics import regression_metrics
from mofsieve.modeldir import read_model
from mofsieve.store import write_shard
from mofsieve.structures import StructureError, p1_cif_text, parse_cif

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "core2019-co2"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_cifs(wanted: set[str]) -> list[tuple[str, bytes, bytes]]:
    """(mof_id, P1 CIF with charges, the same without) of the wanted MOFs that parse."""
    found = []
    for member, data in iter_archive(SHARED / "cifs.tar.xz"):
        mof_id = mof_id_of(member)
        if mof_id not in wanted:
            continue
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        cell = (crystal.atomic_number, crystal.frac_coords, crystal.lattice)
        charged = p1_cif_text(mof_id, *cell, charge=crystal.charge).encode()
        found.append((mof_id, charged, p1_cif_text(mof_id, *cell, charge=None).encode()))
    return found


def predictions(model: Path, params, cifs: list[tuple[str, bytes]], work: Path, threads: int):
    """{mof_id: prediction} of ``model`` for ``cifs`` featurized with ``params``."""
    from mofsieve.cli import main

    graphs = []
    for mof_id, data in cifs:
        try:
            graphs.append(featurize_cif(mof_id, mof_id, data, params))
        except StructureError:
            continue
    work.mkdir(parents=True)
    write_shard(work / "shard-00000.h5", graphs, params)
    out = work / "predictions.csv"
    code = main(["predict", "--model", str(model), "--graphs", str(work), "--out", str(out),
                 "--threads", str(threads)])  # fmt: skip
    if code != 0:
        raise SystemExit(f"mofsieve predict failed ({code})")
    return {row["mof_id"]: float(row["prediction"]) for row in _read_csv(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not (SHARED / "cifs.tar.xz").is_file():
        print(f"skipped: {SHARED} is absent (the charged CoRE MOF 2019 CIFs and labels)")
        return 0
    spec = read_model(args.model)
    params = spec.featurization
    target = spec.target.name
    labels = {r["mof_id"]: r.get(target, "") for r in _read_csv(SHARED / "labels.csv")}
    split = _read_csv(args.model / "split.csv")
    wanted = {r["mof_id"] for r in split if r["split"] == "test" and labels.get(r["mof_id"])}
    cifs = test_cifs(wanted)
    print(f"{args.model}: {target}; featurization charges: {params.charges}; "
          f"{len(cifs)} test MOFs")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        with_q = predictions(args.model, params, [(m, a) for m, a, _ in cifs], Path(tmp) / "q",
                             args.threads)  # fmt: skip
        without_q = predictions(args.model, params, [(m, b) for m, _, b in cifs],
                                Path(tmp) / "noq", args.threads)  # fmt: skip
    ids = sorted(set(with_q) & set(without_q))
    y = np.array([float(labels[m]) for m in ids])
    print(f"{'CIFs':36s} {'n':>5s} {'MAE':>7s} {'Spearman':>9s} {'top-10 % recall':>16s}")
    for name, pred in (("with their own charges", with_q), ("without charges", without_q)):
        m = regression_metrics(y, np.array([pred[i] for i in ids]))
        print(f"{name:36s} {m['n']:5d} {m['mae']:7.3f} {m['spearman']:9.3f} "
              f"{m['top10_recall']:16.3f}")  # fmt: skip
    diff = np.mean([abs(with_q[i] - without_q[i]) for i in ids])
    print(f"mean |prediction with − without charges|: {diff:.3f} mol/kg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
