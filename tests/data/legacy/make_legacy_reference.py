"""Make the legacy reference: a format-1 shard and the shipped models' predictions on it, both
from mofsieve as it was before shard format 2 and OCrystalNet (commit d636fc3).

Run with that commit's sources first on the path::

    git archive d636fc3 src | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src .venv/bin/python tests/data/legacy/make_legacy_reference.py

``shard-v1.h5``: three small CoRE MOF 2019-ASR structures (core-mof package), featurized as
the shipped models need (their 12 descriptors). ``predictions.json``: for each shipped model,
every member's raw output (standardised, float32 as hex) and the ensemble mean per MOF, as
``Predictor`` computes them with equivalent atoms merged and fused kernels off; the test
requires today's code to give the very same bits. Those models (v1, weights unchanged since)
were replaced in ``models/`` by version 2; the test reads them from ``models/`` here, copied
from commit 9b4eff7.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["MOFSIEVE_FUSED_KERNELS"] = "0"

import torch  # noqa: E402

from mofsieve.batching import iter_shard_batches  # noqa: E402
from mofsieve.featurize import featurize_cif  # noqa: E402
from mofsieve.manifest import iter_archive, package_archive  # noqa: E402
from mofsieve.modeldir import read_model  # noqa: E402
from mofsieve.predict import Predictor  # noqa: E402
from mofsieve.store import FORMAT_VERSION, ShardReader, write_shard  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MODELS = ("co2_298K_0.15bar", "co2_298K_16bar")
MOFS = ("AGESIP_clean", "ADAXEK_clean", "AHOKIR01_clean")


def main() -> None:
    assert FORMAT_VERSION == 1, "run with the old sources first on PYTHONPATH"
    torch.set_num_threads(1)
    params = read_model(REPO / "models" / MODELS[0]).featurization
    graphs = [
        featurize_cif(Path(name).stem, name, data, params)
        for name, data in iter_archive(package_archive("core-mof:2019-ASR"))
        if Path(name).stem in MOFS
    ]
    shard = write_shard(HERE / "shard-v1.h5", graphs, params)
    out: dict[str, object] = {"mof_ids": [g.mof_id for g in graphs]}
    for name in MODELS:
        predictor = Predictor(REPO / "models" / name, "cpu")
        reader = ShardReader(shard, in_memory=True)
        names = reader.params.global_feature_names
        index = [names.index(n) for n in predictor.params.global_feature_names]
        means: list[str] = []
        members: list[list[str]] = [[] for _ in predictor.members]
        batches = iter_shard_batches(reader, index, 8000, predictor.spec.num_layers)
        for _, batch, _ in batches:
            mean, _, _ = predictor(batch)
            means += [float(v).hex() for v in mean]
            with torch.no_grad():
                for k, member in enumerate(predictor.members):
                    members[k] += [float(v).hex() for v in member(batch)]
        out[name] = {"mean": means, "members": members}
    (HERE / "predictions.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
