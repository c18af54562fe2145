"""The guards of mofsieve.raspa3_engine: every bad value is an error before raspalib sees it.

raspalib 3.1.0 aborts the whole process on some bad inputs (a cell in degrees corrupts its
heap), so each test here calls ``run_gcmc`` in this process: a missing guard is a crash.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from mofsieve.raspa3_engine import EngineInputError, FrameworkInput, Protocol, run_gcmc


def framework(**changes: object) -> FrameworkInput:
    """A valid 2-atom framework in a 25 Å cube (one unit cell), changed as asked."""
    values: dict[str, object] = {
        "name": "cube",
        "lengths": (25.0, 25.0, 25.0),
        "angles_rad": (math.pi / 2,) * 3,
        "elements": ("Zn", "O"),
        "frac_coords": np.array([[0.1, 0.2, 0.3], [0.6, 0.7, 0.8]]),
        "charges": np.array([0.5, -0.5]),
        "unit_cells": (1, 1, 1),
    }
    values.update(changes)
    return FrameworkInput(**values)  # type: ignore[arg-type]


PROTOCOL = Protocol(temperature_k=298.0, pressure_bar=0.15, cycles=10, init_cycles=0, seed=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"angles_rad": (90.0, 90.0, 90.0)}, "not in (0, π): raspalib takes radians (degrees given?)"),
        ({"angles_rad": (1.0, 1.0, 2.5)}, "degenerate cell: angles 57.3, 57.3, 143.2 degrees do not close a cell"),
        ({"angles_rad": (0.0, 1.5, 1.5)}, "must be > 0 radians"),
        ({"lengths": (25.0, 0.0, 25.0)}, "degenerate cell: lengths 25, 0, 25 Å"),
        ({"lengths": (25.0, math.nan, 25.0)}, "cell must be 3 finite lengths and 3 finite angles"),
        ({"elements": ("Og", "O")}, "cube: no UFF parameters for element 'Og'"),
        ({"frac_coords": np.array([[0.1, np.nan, 0.3], [0.6, 0.7, 0.8]])}, "non-finite coordinates [0.1, nan, 0.3] at atom 0"),
        ({"charges": np.array([np.inf, -0.5])}, "non-finite charge inf at atom 0"),
        ({"charges": np.array([12.0, -12.0])}, "charge +12.000 e at atom 0 (Zn) is beyond ±8 e"),
        ({"charges": np.array([0.5])}, r"cube: (1,) charges for 2 atoms"),
        ({"elements": ()}, "cube: no atoms"),
        ({"unit_cells": (0, 1, 1)}, "unit cells must be 3 integers ≥ 1"),
        ({"lengths": (20.0, 25.0, 25.0)}, "box widths [20.0, 25.0, 25.0] Å with (1, 1, 1) unit cells are below twice the 12 Å cutoff"),
        ({"name": ""}, "framework name must be a non-empty string"),
    ],
)  # fmt: skip
def test_each_bad_framework_is_an_error_before_raspalib(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(EngineInputError, match=re.escape(message)):
        run_gcmc(framework(**changes), PROTOCOL)  # reaching raspalib would abort this process


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temperature_k": -5.0}, "temperature must be a finite number > 0, got -5.0"),
        ({"pressure_bar": math.inf}, "pressure must be a finite number > 0, got inf"),
        ({"cycles": 0}, "cycles must be an integer ≥ 1, got 0"),
        ({"init_cycles": 1.5}, "init_cycles must be an integer ≥ 0, got 1.5"),
        ({"seed": -1}, "seed must be an integer in [0, 2^63), got -1"),
        ({"cutoff": 0.0}, "cutoff must be a finite number > 0 Å, got 0.0"),
        ({"truncation": "switched"}, "truncation must be one of ('shifted', 'truncated'), not 'switched'"),
    ],
)  # fmt: skip
def test_each_bad_protocol_is_an_error_before_raspalib(
    changes: dict[str, object], message: str
) -> None:
    values = {**PROTOCOL.__dict__, **changes}
    with pytest.raises(EngineInputError, match=re.escape(message)):
        run_gcmc(framework(), Protocol(**values))  # type: ignore[arg-type]
