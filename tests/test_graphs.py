from __future__ import annotations

import warnings

import numpy as np
import pytest

from mofsieve.graphs import neighbour_graph
from mofsieve.manifest import iter_archive, package_archive
from mofsieve.structures import parse_cif

FCC_A = 3.615


def fcc_copper() -> tuple[np.ndarray, np.ndarray]:
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], dtype=float)
    return frac, np.eye(3) * FCC_A


def test_fcc_copper_has_twelve_nearest_neighbours_at_a_over_root_two():
    graph = neighbour_graph(*fcc_copper())
    assert np.bincount(graph.dst).tolist() == [12, 12, 12, 12]
    np.testing.assert_allclose(graph.dist, FCC_A / np.sqrt(2), rtol=1e-12)


def test_one_atom_cell_is_a_multigraph_over_images():
    # Simple cubic, one atom: all 12 neighbours are the atom itself in other cells.
    graph = neighbour_graph(np.zeros((1, 3)), np.eye(3) * 3.0)
    assert len(graph.dist) == 12
    assert set(graph.src.tolist()) == {0} and set(graph.dst.tolist()) == {0}
    assert len({tuple(i) for i in graph.image.tolist()}) == 12
    # 6 face neighbours at 3 Å, then 6 of the 12 edge neighbours at 3√2 Å (a tie).
    np.testing.assert_allclose(np.sort(graph.dist), [3.0] * 6 + [3 * np.sqrt(2)] * 6)


def test_ties_are_broken_the_same_way_whatever_the_input_order():
    frac, lattice = fcc_copper()
    graph = neighbour_graph(frac, lattice)
    again = neighbour_graph(frac, lattice)
    for a, b in zip(
        (graph.src, graph.dst, graph.image), (again.src, again.dst, again.image), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # Tie-break is distance, then neighbour index, then image: the kept image set of a 12-way
    # tie in the 1-atom cell must be the lexicographically smallest half.
    one = neighbour_graph(np.zeros((1, 3)), np.eye(3) * 3.0)
    far = one.image[np.isclose(one.dist, 3 * np.sqrt(2))]
    all_edge_images = sorted(
        (i, j, k)
        for i in (-1, 0, 1)
        for j in (-1, 0, 1)
        for k in (-1, 0, 1)
        if abs(i) + abs(j) + abs(k) == 2
    )
    assert sorted(map(tuple, far.tolist())) == all_edge_images[:6]


def test_fewer_neighbours_in_range_means_fewer_edges_never_padding():
    frac, lattice = fcc_copper()
    graph = neighbour_graph(frac, lattice, cutoff=2.0)  # nearest neighbours are at 2.556 Å
    assert len(graph.dist) == 0
    isolated = neighbour_graph(np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.6]]), np.eye(3) * 20.0)
    assert np.bincount(isolated.dst).tolist() == [1, 1]


def test_first_shell_shortcut_matches_a_full_cutoff_search(test_data):
    crystal = parse_cif((test_data / "good/toy_framework_charged.cif").read_bytes())
    shortcut = neighbour_graph(crystal.frac_coords, crystal.lattice, cutoff=8.0)
    direct = neighbour_graph(crystal.frac_coords, crystal.lattice, cutoff=5.99)
    # Every atom of this dense toy cell has 12 neighbours inside 6 Å, so both must agree.
    assert np.bincount(direct.dst).tolist() == [12] * crystal.n_atoms
    np.testing.assert_array_equal(shortcut.src, direct.src)
    np.testing.assert_array_equal(shortcut.image, direct.image)


def _core_mof_cifs(n: int) -> list[tuple[str, bytes]]:
    out = []
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        out.append((name, data))
        if len(out) == n:
            break
    return out


def test_real_mofs_match_pymatgen_neighbour_distances():
    """The CGCNN reference procedure (pymatgen parse, get_all_neighbors, 12 nearest)."""
    from pymatgen.core import Structure
    from scipy.spatial import cKDTree

    for name, data in _core_mof_cifs(4):
        crystal = parse_cif(data)
        graph = neighbour_graph(crystal.frac_coords, crystal.lattice)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(data.decode(), fmt="cif")
        reference = [
            sorted(n.nn_distance for n in ns)[:12] for ns in structure.get_all_neighbors(8.0)
        ]
        assert structure.num_sites == crystal.n_atoms, name
        # pymatgen reorders atoms; pair them up by position.
        tree = cKDTree(crystal.frac_coords, boxsize=1.0)
        _, index = tree.query(np.mod(structure.frac_coords, 1.0) % 1.0)
        assert sorted(index.tolist()) == list(range(crystal.n_atoms)), name
        for ref, atom in zip(reference, index, strict=True):
            ours = np.sort(graph.dist[graph.dst == atom])
            assert len(ours) == len(ref), name
            np.testing.assert_allclose(ours, ref, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("max_neighbors", [1, 6, 12, 20])
def test_max_neighbours_is_respected(max_neighbors):
    graph = neighbour_graph(*fcc_copper(), max_neighbors=max_neighbors)
    assert np.bincount(graph.dst).tolist() == [max_neighbors] * 4


def _core_mof_crystals(count: int):
    """The first ``count`` structures of the core-mof package that parse."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.structures import StructureError

    found = []
    for _, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            found.append(parse_cif(data))
        except StructureError:
            continue
        if len(found) == count:
            return found
    pytest.fail(f"fewer than {count} parsable CIFs in core-mof")


def test_compiled_top_k_gives_numpys_graph_exactly():
    """The same edges, distances and images in the same order as numpy's sorts, on real MOFs
    and on lattices where every neighbour shell ties (simple cubic: the 12th neighbour is one
    of 12 at a√2, chosen by index and image)."""
    from mofsieve import graph_native

    if graph_native.kernel() is None:
        pytest.skip("the neighbour-graph kernel cannot be built here (no C++ compiler)")
    structures = [(c.frac_coords, c.lattice) for c in _core_mof_crystals(60)]
    structures += [fcc_copper(), (np.zeros((1, 3)), np.eye(3) * 3.0)]
    structures += [(np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * 4.0)]  # bcc: 8, then 6
    for frac, lattice in structures:
        for k in (12, 5):
            compiled = neighbour_graph(frac, lattice, max_neighbors=k)
            with graph_native.switched_off():
                reference = neighbour_graph(frac, lattice, max_neighbors=k)
            for name in ("src", "dst", "dist", "image"):
                np.testing.assert_array_equal(getattr(compiled, name), getattr(reference, name))


def test_compiled_top_k_refuses_inconsistent_pairs():
    from mofsieve import graph_native

    library = graph_native.kernel()
    if library is None:
        pytest.skip("the neighbour-graph kernel cannot be built here (no C++ compiler)")
    centre, neigh = np.array([0, 1, 1]), np.array([1, 0, 0])
    images, dist = np.zeros((3, 3), dtype=np.int64), np.array([1.0, 1.0, 2.0])
    kept = graph_native.nearest_k(library, centre, neigh, images, dist, n_atoms=2, k=1)
    assert kept.tolist() == [0, 1]
    with pytest.raises(ValueError, match="pair arrays of different lengths"):
        graph_native.nearest_k(library, centre, neigh[:2], images, dist, n_atoms=2, k=1)
    with pytest.raises(ValueError, match="a pair's centre outside 0..1"):
        graph_native.nearest_k(library, centre + 1, neigh, images, dist, n_atoms=2, k=1)
    with pytest.raises(ValueError, match="k must be at least 1, not 0"):
        graph_native.nearest_k(library, centre, neigh, images, dist, n_atoms=2, k=0)
