"""mofsieve: screen MOF CIFs for CO2 capture with an attention graph neural network."""

from __future__ import annotations

__version__ = "0.1.0"
