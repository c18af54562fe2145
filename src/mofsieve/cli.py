"""The `mofsieve` command line: one verb per pipeline step.

Each verb lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only for the verb that runs, so that `mofsieve rank` does not pay for
importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "manifest": (
        "mofsieve.manifest",
        "list input CIFs (files, folders, globs, archives) into shards",
    ),
    "featurize": ("mofsieve.featurize", "turn CIFs into versioned HDF5 crystal-graph shards"),
    "train": ("mofsieve.train", "train a surrogate model on graph shards and a label CSV"),
    "predict": ("mofsieve.predict", "predict a target for every graph in some shards"),
    "rank": ("mofsieve.rank", "gather predictions, rank them and flag the top fraction"),
    "gcmc": ("mofsieve.gcmc", "write RASPA inputs and an sbatch array for flagged MOFs"),
    "simulate": ("mofsieve.simulate", "run GCMC of CO2 (RASPA3, in-process) in each MOF"),
    "charges": ("mofsieve.charge_model", "predict partial charges and write P1 CIFs with them"),
    "validate": ("mofsieve.validate", "compare simulated uptakes with the surrogate's predictions"),
    "boost": ("mofsieve.booster", "blend gradient-boosted trees on descriptors into a model"),
    "calibrate": ("mofsieve.calibrate", "scale a model's ensemble spread into a calibrated σ"),
    "report": ("mofsieve.report", "write a self-contained HTML report of a screening run"),
}
# verbs run as workflow jobs whose process defers the parts of torch and PyG it never uses
# (mofsieve.lean_imports): done here, before the verb's module imports anything
LEAN_VERBS = frozenset({"featurize", "predict", "gcmc"})


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mofsieve",
        description="Screen MOF CIFs for CO2 capture with a graph neural network surrogate.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="verbs:\n" + "\n".join(f"  {v:<10} {h}" for v, (_, h) in VERBS.items()),
    )
    parser.add_argument("verb", choices=sorted(VERBS), metavar="VERB", help="what to do")
    parser.add_argument("--version", action="version", version=_version())
    return parser


def _version() -> str:
    from mofsieve import __version__

    return f"mofsieve {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0].startswith("-"):
        top.parse_args(argv or ["--help"])
        return 2
    verb = top.parse_args(argv[:1]).verb
    module_name, help_text = VERBS[verb]
    if verb in LEAN_VERBS:
        from mofsieve import lean_imports

        lean_imports.defer()
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"mofsieve {verb}", description=help_text)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
