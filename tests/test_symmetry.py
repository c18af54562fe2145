"""Atoms the model cannot tell apart are computed once (mofsieve.symmetry): which atoms merge,
and that merging changes no prediction on real structures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from mofsieve.batching import graph_to_data, merged_batch, merged_graph_data
from mofsieve.model import AECGCNN, ModelConfig
from mofsieve.store import CrystalGraph
from mofsieve.symmetry import atom_colours, merge_equivalent_atoms


def _ring(atomic_number: list[int], charge: list[float] | None = None) -> CrystalGraph:
    """Atoms on a ring, 1.5 Å apart: each has its two ring neighbours as edges."""
    n = len(atomic_number)
    dst = np.repeat(np.arange(n), 2)
    src = np.stack([(np.arange(n) - 1) % n, (np.arange(n) + 1) % n], 1).reshape(-1)
    return CrystalGraph(
        mof_id="ring",
        source="ring",
        atomic_number=np.array(atomic_number, np.uint8),
        charge=np.array(charge if charge is not None else [np.nan] * n, np.float32),
        frac_coords=np.zeros((n, 3)),
        lattice=np.eye(3) * 10,
        edge_src=src.astype(np.int32),
        edge_dst=dst.astype(np.int32),
        edge_dist=np.full(2 * n, 1.5, np.float32),
        edge_image=np.zeros((2 * n, 3), np.int8),
    )


def _partition(colour: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(colour == c).tolist()) for c in np.unique(colour)}


def _colours(g: CrystalGraph, rounds: int) -> np.ndarray:
    return atom_colours(g.atomic_number, g.charge, g.edge_src, g.edge_dst, g.edge_dist, rounds)


def test_colours_tell_atoms_apart_by_what_the_model_sees_within_its_layers():
    assert _partition(_colours(_ring([6] * 6), rounds=4)) == {frozenset(range(6))}
    # One nitrogen: atoms split by ring distance to it, but only as far as the rounds reach.
    ring = _ring([7, 6, 6, 6, 6, 6])
    assert _partition(_colours(ring, rounds=1)) == {
        frozenset({0}),
        frozenset({1, 5}),
        frozenset({2, 3, 4}),
    }
    assert _partition(_colours(ring, rounds=4)) == {
        frozenset({0}),
        frozenset({1, 5}),
        frozenset({2, 4}),
        frozenset({3}),
    }
    # A different distance on one edge, and a different charge, are different inputs.
    ring = _ring([6] * 6)
    ring.edge_dist[0] = np.nextafter(np.float32(1.5), np.float32(2))  # atom 0's edge from atom 5
    assert {0} in [set(s) for s in _partition(_colours(ring, rounds=1))]
    charged = _ring([6] * 4, charge=[0.1, 0.1, 0.1, 0.2])
    assert frozenset({3}) in _partition(_colours(charged, rounds=1))


def test_colours_do_not_depend_on_edge_order_or_a_regular_degree():
    """Shards group each atom's K edges; any other edge order (and atoms with fewer edges,
    as when fewer than K neighbours lie within the cutoff) takes the general path."""
    ring = _ring([7, 6, 6, 6, 6, 6])
    shuffled = np.random.default_rng(0).permutation(len(ring.edge_src))
    src, dst, dist = ring.edge_src[shuffled], ring.edge_dst[shuffled], ring.edge_dist[shuffled]
    expected = _partition(_colours(ring, rounds=4))
    assert _partition(atom_colours(ring.atomic_number, ring.charge, src, dst, dist, 4)) == expected
    # Drop atom 2's edge from atom 1: atom 2 now hears one neighbour, atom 4 two, and atoms 1
    # and 5 hear from 2 and 4 respectively, so they differ too (the mirror is broken).
    keep = ~((ring.edge_dst == 2) & (ring.edge_src == 1))
    colours = atom_colours(
        ring.atomic_number,
        ring.charge,
        ring.edge_src[keep],
        ring.edge_dst[keep],
        ring.edge_dist[keep],
        4,
    )
    assert colours[2] != colours[4] and colours[1] != colours[5]


def test_merged_graph_keeps_representatives_with_their_own_edges():
    ring = _ring([7, 6, 6, 6, 6, 6])
    merged, multiplicity, atom_to_row = merge_equivalent_atoms(ring, rounds=4)
    assert merged.n_atoms == 4 and multiplicity.tolist() == [1, 2, 2, 1]
    assert atom_to_row.tolist() == [0, 1, 2, 3, 2, 1]
    # Row 3 (atom 3) has atom 3's neighbours 2 and 4, both now row 2.
    assert merged.edge_src[merged.edge_dst == 3].tolist() == [2, 2]
    assert len(merged.edge_src) == 2 * merged.n_atoms
    # Nothing to merge: the graph itself comes back.
    lonely = _ring([6, 7, 8])
    assert merge_equivalent_atoms(lonely, rounds=4)[0] is lonely


@pytest.fixture(scope="module")
def symmetric_mofs(core_mof_graphs) -> list[CrystalGraph]:
    """The first real structures of the core-mof package (no partial charges) with at most
    150 atoms whose graphs merge to at most half their atoms."""
    return core_mof_graphs(
        3, lambda g: g.n_atoms <= 150 and merge_equivalent_atoms(g, 4)[0].n_atoms * 2 <= g.n_atoms
    )


def _batch(graphs: list[CrystalGraph], merge: bool, rounds: int) -> tuple[Batch, np.ndarray]:
    """A batch of ``graphs`` as predict builds it, merged or not, and each atom's row."""
    if not merge:
        atoms = sum(g.n_atoms for g in graphs)
        return Batch.from_data_list([graph_to_data(g, None) for g in graphs]), np.arange(atoms)
    return merged_batch([merged_graph_data(graph, [], rounds) for graph in graphs])


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(conv="cgcnn", readout="mean", use_cell=True),
        ModelConfig(conv="cgcnn", readout="sum", num_layers=2),
        ModelConfig(
            conv="attention",
            heads=3,
            head_combine="attention",
            edge_update=True,
            use_charge=True,
            use_cell=True,
            readout="attention",
        ),
    ],
    ids=["cgcnn-mean-cell", "cgcnn-sum-2-layers", "atten3-edge-attention-readout"],
)
def test_merging_equivalent_atoms_changes_no_prediction(symmetric_mofs, config):
    torch.manual_seed(0)
    model = AECGCNN(config)
    full, _ = _batch(symmetric_mofs, merge=False, rounds=config.num_layers)
    with torch.no_grad():  # BatchNorm statistics of the real graphs, not the identity
        model.train()(full)
    model.eval()
    merged, atom_to_row = _batch(symmetric_mofs, merge=True, rounds=config.num_layers)
    assert merged.num_nodes * 2 <= full.num_nodes
    with torch.no_grad():
        out_full, weights_full = model(full, return_atom_weights=True)
        out_merged, weights_merged = model(merged, return_atom_weights=True)
    torch.testing.assert_close(out_merged, out_full, rtol=1e-5, atol=1e-5)
    assert out_full.std() > 0  # the crystals differ: equal outputs are not a constant
    if config.readout == "attention":
        torch.testing.assert_close(weights_merged[atom_to_row], weights_full, rtol=1e-4, atol=1e-7)


def test_too_few_rounds_would_merge_atoms_a_deeper_model_tells_apart():
    """Why the rounds follow the model's depth: on the ring with one nitrogen, one round
    merges atoms 2, 3 and 4, which a 4-layer model tells apart; four rounds do not."""
    ring = _ring([7, 6, 6, 6, 6, 6])
    torch.manual_seed(1)
    model = AECGCNN(ModelConfig(conv="cgcnn", readout="mean", num_layers=4)).eval()
    full, _ = _batch([ring], merge=False, rounds=4)
    coarse, _ = _batch([ring], merge=True, rounds=1)
    exact, _ = _batch([ring], merge=True, rounds=4)
    with torch.no_grad():
        assert not torch.allclose(model(coarse), model(full), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(model(exact), model(full), rtol=1e-5, atol=1e-5)
