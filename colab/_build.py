"""Builds the Colab notebooks colab/NN_name.ipynb from their sources colab/src/NN_name.py.

A source is a plain Python file in "percent" format (as written by jupytext / VS Code):

    # %% [markdown]
    # # 01 Gradients and gradient descent
    # Text of a markdown cell, each line behind "# ".

    # %%
    x = 1  # a code cell runs to the next marker

The first cell must be the markdown title. After it the builder inserts the two cells every
notebook shares (so nobody copies them by hand): SETUP_CELL (installs jaxzoo on Colab, finds the
local checkout elsewhere, prints the backend, the device count and the precision of float32
matrix products: TF32 on recent GPUs, one bfloat16 pass on TPUs) and SMOKE_CELL (reads
JAXZOO_SMOKE). The title cell gets an "Open in Colab" badge.

Outputs are never written: notebooks are committed empty and executed in CI
(tests/test_notebooks.py). Cell ids are deterministic so rebuilding an unchanged source gives a
byte-identical file.

Usage:
    python colab/_build.py            # rebuild every notebook
    python colab/_build.py --check    # exit 1 if a notebook differs from its source
    python colab/_build.py 01_gradients   # rebuild only the names given
    python colab/_build.py --script 01_gradients > /tmp/nb.py   # the code cells as one script
                                  # (JAXZOO_SMOKE=1 MPLBACKEND=Agg python /tmp/nb.py to iterate)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

COLAB = Path(__file__).resolve().parent
SRC = COLAB / "src"
REPO_URL = "https://github.com/jaxzoo/jaxzoo"  # placeholder until the repository is published
BADGE_URL = "https://colab.research.google.com/github/jaxzoo/jaxzoo/blob/main/colab/{name}.ipynb"
BADGE = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({BADGE_URL})"

SETUP_CELL = f'''\
# Setup (the same cell in every jaxzoo notebook): install jaxzoo on Colab, use the local checkout
# elsewhere, then report what JAX runs on. Works unchanged on TPU, GPU and CPU runtimes.
import importlib
import importlib.util
import os
import subprocess
import sys

REPO_URL = "{REPO_URL}"  # placeholder: the URL of the jaxzoo repository

if importlib.util.find_spec("functional") is None:
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"git+{{REPO_URL}}"],
                       check=True)
    else:  # a local checkout that is not installed: the notebooks live in <repo>/colab
        for root in (os.getcwd(), os.path.dirname(os.getcwd())):
            if os.path.isdir(os.path.join(root, "functional")):
                sys.path.insert(0, root)
                break
        else:
            raise ImportError("jaxzoo not found: `pip install -e .` in the repository, "
                              "or start Jupyter from the repository or its colab/ folder")
    importlib.invalidate_caches()

import jax

import functional



def matmul_precision():
    """What float32 matrix products and convolutions compute with here (default precision)."""
    if jax.config.jax_default_matmul_precision in ("highest", "float32"):
        return "float32 (jax.default_matmul_precision is 'highest')"
    emulation = sys.modules.get("precision_emulation")  # jaxzoo's tests, emulating on CPU
    if emulation is not None and emulation.mode():
        return emulation.describe()
    capability = str(getattr(jax.devices()[0], "compute_capability", "0"))
    if jax.default_backend() == "tpu":
        return "one bfloat16 pass (about 3 significant digits)"
    if jax.default_backend() == "gpu" and (not capability.replace(".", "", 1).isdigit()
                                           or float(capability) >= 8):  # (ROCm: TF32-like)
        return "TF32 (about 3 significant digits)"
    return "float32 (about 7 significant digits)"


print(f"jaxzoo from {{os.path.dirname(os.path.dirname(os.path.abspath(functional.__file__)))}}")
print(f"jax {{jax.__version__}}: backend {{jax.default_backend()}}, "
      f"{{jax.device_count()}} device(s): {{jax.devices()[0].device_kind}}")
print(f"float32 matmul precision: {{matmul_precision()}}; "
      "under jax.default_matmul_precision('highest'): float32")'''

SMOKE_CELL = '''\
# JAXZOO_SMOKE=1 (set by CI) runs the same cells with smaller sizes, in well under a minute on
# 2 CPU cores. Every size below is chosen from SMOKE.
SMOKE = os.environ.get("JAXZOO_SMOKE") == "1"
print("smoke mode: small sizes" if SMOKE else "full mode")'''

_MARKER = re.compile(r"^# %%(?P<md>\s*\[markdown\])?\s*$")


def parse(text: str) -> list[tuple[str, str]]:
    """Splits a percent-format source into ``[(kind, source)]`` with kind 'code' or 'markdown'."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        m = _MARKER.match(line)
        if m:
            cells.append(("markdown" if m.group("md") else "code", []))
        elif cells:
            if cells[-1][0] == "markdown":
                if line.strip() and not line.startswith("#"):
                    raise ValueError(f"markdown line does not start with '#': {line!r}")
                line = line[2:] if line.startswith("# ") else line[1:]
            cells[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' marker: {line!r}")
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def build(source: Path) -> nbformat.NotebookNode:
    """Returns the notebook for one source file (with the shared cells, without outputs)."""
    name = source.stem
    cells = parse(source.read_text(encoding="utf-8"))
    if not cells or cells[0][0] != "markdown" or not cells[0][1].startswith("# "):
        raise ValueError(f"{source}: the first cell must be a markdown title '# ...'")
    title = cells[0][1] + "\n\n" + BADGE.format(name=name)
    cells = [("markdown", title), ("code", SETUP_CELL), ("code", SMOKE_CELL)] + cells[1:]
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "colab": {"name": f"{name}.ipynb", "provenance": []},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text) in enumerate(cells):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(text)
        cell.id = f"{name[:2]}-{i:03d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="notebook names (default: every source)")
    p.add_argument("--check", action="store_true", help="only check notebooks are up to date")
    p.add_argument("--script", action="store_true",
                   help="print the code cells of the named notebooks as one Python script")
    args = p.parse_args(argv)
    if args.script:
        for name in args.names:
            nb = build(SRC / f"{name.removesuffix('.py').removesuffix('.ipynb')}.py")
            print("\n\n".join(f"# In[{i}]:\n{c.source}" for i, c in enumerate(nb.cells)
                              if c.cell_type == "code"))
        return 0
    sources = sorted(SRC.glob("[0-9][0-9]_*.py"))
    if args.names:
        sources = [SRC / f"{n.removesuffix('.py').removesuffix('.ipynb')}.py" for n in args.names]
    stale = []
    for source in sources:
        target = COLAB / f"{source.stem}.ipynb"
        text = render(build(source))
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(COLAB.parent)}")
    if stale:
        print("out of date with colab/src (run python colab/_build.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
