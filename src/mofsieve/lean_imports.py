"""Defer the parts of torch and PyG that predict, featurize and gcmc jobs import but never run.

``import torch_geometric`` executes every PyG subpackage: its datasets (and through them its
LLM tools, pandas, …) and, through ``torch_geometric.isinstance``, ``torch._dynamo`` (the
compiler front end, with sympy). Prediction uses none of them, nor do featurization and the
GCMC decks (whose charge model and fused kernels import torch and PyG), yet they were half of
a predict job's imports (``python -X importtime``, README "Performance"), and tearing them
down again at exit cost as much. :func:`defer` puts a stand-in module into ``sys.modules`` for
each: ``import torch._dynamo`` binds the stand-in, and the first use of anything in it (an
attribute, or importing one of its submodules) runs the real package in place first, so code
that does need it gets it, only later, as a normal import would have given it.
``mofsieve.cli`` calls it for those verbs (``LEAN_VERBS``); ``MOFSIEVE_LEAN_IMPORTS=0``
turns this off.
"""

from __future__ import annotations

import copy
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from typing import Any

# (package, subpackage) pairs: what `mofsieve predict`, `featurize` and `gcmc` never use
UNUSED_BY_JOBS: tuple[tuple[str, str], ...] = (
    ("torch", "torch._dynamo"),
    ("torch_geometric", "torch_geometric.datasets"),
)


class DeferredModule(types.ModuleType):
    """A package whose code runs the first time something not set here is asked of it, or one
    of its submodules is imported (see :class:`_PackageFirst`)."""

    def __getattr__(self, name: str) -> object:  # only called for names not set
        run_deferred(self)
        return getattr(self, name)


def run_deferred(module: types.ModuleType) -> None:
    """Run a :class:`DeferredModule`'s real code in place (nothing if it has run)."""
    if not isinstance(module, DeferredModule):
        return
    spec = module.__spec__
    module.__class__ = types.ModuleType  # from here on an ordinary module
    spec._initializing = True  # type: ignore[union-attr]  # as importlib marks a module loading
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        sys.modules.pop(module.__name__, None)  # a later import retries, as importlib does
        raise
    finally:
        spec._initializing = False  # type: ignore[union-attr]


def _set_spec(module: types.ModuleType, spec: Any) -> None:
    # past a module class's own __setattr__ (torch's config modules refuse unknown names)
    types.ModuleType.__setattr__(module, "__spec__", spec)


class _Loaded(importlib.abc.Loader):
    """Gives the import system a module its package's own code has just imported."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: Any) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        _set_spec(module, self.spec)  # the module's own spec back


class _PackageFirst(importlib.abc.MetaPathFinder):
    """Before a submodule of a deferred package is imported, the package runs (as it would
    have: a package's code runs before its submodules'); if that imported the submodule, the
    import gets that module, not a second copy."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        package = sys.modules.get(name.rpartition(".")[0])
        if not isinstance(package, DeferredModule):
            return None
        run_deferred(package)
        module = sys.modules.get(name)
        if module is None or module.__spec__ is None:
            return None  # the other finders find it, now after its package
        spec = copy.copy(module.__spec__)
        spec.loader = _Loaded(module)  # keeps the module's own spec, to put back
        _set_spec(module, spec)  # importlib takes the spec of a module already there
        return spec


_FINDER = _PackageFirst()


def is_deferred(name: str) -> bool:
    """Whether ``name`` is in ``sys.modules`` as a stand-in whose code has not run."""
    return isinstance(sys.modules.get(name), DeferredModule)


def defer(pairs: Sequence[tuple[str, str]] = UNUSED_BY_JOBS) -> list[str]:
    """Import each ``(package, submodule)``'s package with a :class:`DeferredModule` standing
    in for the submodule (unless that is imported already); returns the names deferred."""
    if os.environ.get("MOFSIEVE_LEAN_IMPORTS", "1") == "0":
        return []
    deferred = []
    for package, name in pairs:
        if name in sys.modules:
            continue
        try:
            parent = importlib.util.find_spec(package)  # finds it without running it
        except (ImportError, ValueError):
            continue
        locations = parent.submodule_search_locations if parent is not None else None
        if not locations:
            continue
        spec = importlib.machinery.PathFinder.find_spec(name, list(locations))
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            continue
        module = DeferredModule(name)
        module.__spec__ = spec
        module.__loader__ = spec.loader
        module.__package__ = name
        module.__file__ = spec.origin
        module.__path__ = list(spec.submodule_search_locations)
        sys.modules[name] = module
        deferred.append(name)
    if deferred and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    for package, name in pairs:
        if name in deferred:
            parent_module = importlib.import_module(package)
            child = name.rpartition(".")[2]
            if child not in vars(parent_module):  # importing binds it; a stand-in was not
                setattr(parent_module, child, sys.modules[name])
    return deferred
