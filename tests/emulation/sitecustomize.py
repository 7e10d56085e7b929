"""Installs the precision emulation in a child Python when JAXZOO_EMULATE_PRECISION is set.

The test suite's conftest puts this folder first on PYTHONPATH when it runs with
``--emulate-precision`` (or the environment variable), so every Python it starts (subprocesses,
notebook kernels) imports this module at startup. Importing jax here would freeze settings a
child may still change before its first ``import jax`` (``JAX_PLATFORMS``, the CPU device
count), so the emulation is installed right after the child's own ``import jax`` finishes.
Another ``sitecustomize`` later on the path (a distribution's) still runs.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _run_next_sitecustomize():
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


class _AfterJaxImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``jax`` so the emulation is installed once jax has been imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "jax" or "jax" in sys.modules:
            return None
        # find jax's own spec without this finder; stay installed until jax is executed (a
        # mere lookup, importlib.util.find_spec('jax'), must not use the hook up)
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec("jax")
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module
        finder = self

        def exec_then_install(module):
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)
            exec_module(module)
            import precision_emulation

            precision_emulation.install_from_env(check=False)

        spec.loader.exec_module = exec_then_install
        return spec


if os.environ.get("JAXZOO_EMULATE_PRECISION", "").strip().lower() not in ("", "none", "off"):
    if _HERE not in sys.path:
        sys.path.insert(0, _HERE)
    if "jax" in sys.modules:  # pragma: no cover - jax imported before site (unusual)
        import precision_emulation

        precision_emulation.install_from_env(check=False)
    else:
        sys.meta_path.insert(0, _AfterJaxImport())

_run_next_sitecustomize()
