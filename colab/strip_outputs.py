"""Checks (or strips) that the committed notebooks carry no outputs.

Notebooks are committed empty so that diffs show only source changes; CI executes them
(tests/test_notebooks.py). A notebook saved from Jupyter or Colab after running can be cleaned
with ``--fix``; better, edit colab/src/NN_name.py and run ``python colab/_build.py``.

Usage:
    python colab/strip_outputs.py          # exit 1 and list offenders if any notebook has outputs
    python colab/strip_outputs.py --fix    # remove outputs, execution counts and run metadata
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

COLAB = Path(__file__).resolve().parent
_RUN_METADATA = ("execution", "collapsed", "scrolled", "outputId")


def problems(nb) -> list[str]:
    """Lists what makes ``nb`` not clean: outputs, execution counts, per-run cell metadata."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {i}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {i}: execution_count {cell.execution_count}")
        extra = [k for k in _RUN_METADATA if k in cell.get("metadata", {})]
        if extra:
            found.append(f"cell {i}: run metadata {extra}")
    if "widgets" in nb.metadata:
        found.append("notebook metadata: widgets")
    return found


def strip(nb):
    """Removes outputs, execution counts and run metadata in place; returns ``nb``."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            for k in _RUN_METADATA:
                cell.metadata.pop(k, None)
    nb.metadata.pop("widgets", None)
    return nb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", type=Path, help="notebooks (default: colab/*.ipynb)")
    p.add_argument("--fix", action="store_true", help="strip outputs instead of checking")
    args = p.parse_args(argv)
    paths = args.paths or sorted(COLAB.glob("*.ipynb"))
    dirty = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        found = problems(nb)
        if found and args.fix:
            nbformat.write(strip(nb), path)
            print(f"stripped {path.name}")
        elif found:
            dirty += 1
            print(f"{path.name}: " + "; ".join(found))
    return 1 if dirty and not args.fix else 0


if __name__ == "__main__":
    sys.exit(main())
