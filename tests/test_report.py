from __future__ import annotations

import base64
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from mofsieve.cli import main
from mofsieve.store import CrystalGraph, FeaturizationParams, write_shard

UNIT_COLUMNS = "prediction_mol_per_kg,uncertainty_mol_per_kg"


def graph(mof_id: str, n: int) -> CrystalGraph:
    rng = np.random.default_rng(len(mof_id) + n)
    return CrystalGraph(
        mof_id=mof_id,
        source=f"{mof_id}.cif",
        atomic_number=np.array([30] + [6] * (n - 1), dtype=np.uint8),
        charge=np.full(n, np.nan, dtype=np.float32),
        frac_coords=rng.random((n, 3)),
        lattice=np.diag([10.0, 11.0, 12.0]),
        edge_src=np.zeros(0, np.int32),
        edge_dst=np.zeros(0, np.int32),
        edge_dist=np.zeros(0, np.float32),
        edge_image=np.zeros((0, 3), np.int8),
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    graphs = [graph("TOP1", 5), graph("TOP2", 4), graph("LOW", 3)]
    (tmp_path / "graphs").mkdir()
    write_shard(tmp_path / "graphs" / "shard-00000.h5", graphs, FeaturizationParams())
    (tmp_path / "manifest.csv").write_text(
        "mof_id,source,sha1,n_bytes,shard\nTOP1,a,x,1,0\nTOP2,b,x,1,0\nLOW,c,x,1,0\nBAD,d,x,1,0\n"
        "WORSE,e,x,1,0\n"
    )
    (tmp_path / "ranked.csv").write_text(
        f"rank,mof_id,{UNIT_COLUMNS},flagged,n_atoms,source\n"
        "1,TOP1,3.500000,0.200000,yes,5,a\n2,TOP2,2.250000,0.100000,no,4,b\n"
        "3,LOW,0.500000,0.300000,no,3,c\n"
    )
    (tmp_path / "failures.csv").write_text(
        "mof_id,source,stage,reason\nBAD,d,parse,CIF syntax error: line 3\n"
        "WORSE,e,parse,CIF syntax error: line 9\n"
        "OV1,f,graph,overlapping atoms 3 and 7 only 0.36 Å apart (limit 0.5 Å)\n"
        "OV2,g,graph,overlapping atoms 10 and 12 only 0.1 Å apart (limit 0.5 Å)\n"
    )
    (tmp_path / "attention").mkdir()
    with h5py.File(tmp_path / "attention" / "attention-00000.h5", "w") as h5:
        h5["ids"] = np.array(["TOP1", "TOP2", "LOW"], dtype=h5py.string_dtype())
        h5["node_ptr"] = np.array([0, 5, 9, 12])
        h5["atom_weights"] = np.concatenate([np.full(5, 0.2), np.full(4, 0.25), np.full(3, 1 / 3)])
    return tmp_path


def report(run_dir: Path, *extra: str) -> str:
    out = run_dir / "report.html"
    assert main(["report", "--ranked", str(run_dir / "ranked.csv"),
                 "--failures", str(run_dir / "failures.csv"), "--out", str(out),
                 "--manifest", str(run_dir / "manifest.csv"),
                 "--graphs", str(run_dir / "graphs"), *extra]) == 0  # fmt: skip
    return out.read_text()


def images(text: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    ]


def test_report_is_self_contained_with_distribution_table_pictures_failures(run_dir: Path) -> None:
    text = report(run_dir, "--attention", str(run_dir / "attention"), "--pictures", "2")
    pngs = images(text)
    assert len(pngs) == 1 + 2  # the distribution and two candidates
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", text)
    assert "<script" not in text
    assert "flag threshold" in text and "3.5 mol/kg" in text
    assert "TOP1" in text and "TOP2" in text
    assert "no attention weights" not in text
    # both CIF syntax errors grouped under one reason, counted twice
    assert re.search(r"<td>parse</td><td>CIF syntax error</td><td class=\"num\">2</td>", text)
    assert re.search(
        r"<td>graph</td><td>overlapping atoms # and # only # Å apart \(limit # Å\)</td>"
        r"<td class=\"num\">2</td><td>OV1, OV2</td>",
        text,
    )


def test_report_without_attention_colours_by_element_and_says_so(run_dir: Path) -> None:
    text = report(run_dir, "--pictures", "1")
    assert len(images(text)) == 2
    assert "no attention weights: by element" in text


def test_report_rejects_a_file_that_is_not_ranked_csv(run_dir: Path) -> None:
    (run_dir / "ranked.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a ranked.csv"):
        report(run_dir)
