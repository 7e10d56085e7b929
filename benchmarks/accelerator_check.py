"""One command that checks jaxzoo on an accelerator end to end (GPU or TPU; runs on CPU too).

    python benchmarks/accelerator_check.py [--out DIR] [--quick] [--parts tests,notebooks,...]

From the repository root (or with the checkout on ``PYTHONPATH``), it:

1. ``env``: prints and saves the environment: Python, jax, jaxlib, flax, optax, numpy, torch
   versions, the devices, the default precision of float32 products there, the XLA flags;
2. ``tests``: runs the default test suite (``pytest -m 'not slow and not notebook'``, in
   parallel with pytest-xdist when it is installed) and saves the counts, the failures and a
   JUnit file;
3. ``notebooks``: executes every notebook in ``colab/`` in smoke mode (``JAXZOO_SMOKE=1``),
   its code cells top to bottom in a fresh Python process (no Jupyter needed), several at a
   time; parts 2 and 3 run side by side;
4. the speed tables, one after another (no other load on the device): ``lstm``
   (``bench_lstm.py``: ours vs ``torch.nn.LSTM`` on the same device when torch is there, and
   flax), ``loop`` (``bench_loop.py --quick``: ``fit`` vs the Flax loop vs the bare scan,
   and seeds vmapped), ``mnist1d`` (``bench_mnist1d.py --seeds 1``: accuracy and time against
   Flax), ``sweep`` (``bench_sweep.py``: configurations per second, vmapped vs one by one).

Every part has a time budget (seconds; ``--budget-scale`` multiplies them all); a part that
overruns is stopped, reported as ``TIMEOUT`` and the next one starts. Everything is written
to one folder (default ``accelerator-check-<backend>-<time>``): one log per part and
``summary.txt``, which this command also prints. The budgets add up to 13.5 minutes (9.5 of
wall time at most: tests and notebooks run side by side), sized for one H200; on a 2-core CPU
use ``--budget-scale 4`` (or ``--quick`` for a rehearsal of the plumbing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("env", "tests", "notebooks", "lstm", "loop", "mnist1d", "sweep")
# seconds on one H200; tests and notebooks run side by side
BUDGETS = {"env": 60, "tests": 240, "notebooks": 240, "lstm": 60, "loop": 75, "mnist1d": 60,
           "sweep": 75}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]]
                                                       if env.get("PYTHONPATH") else []))
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(name: str, argv: list[str], out: Path, budget: float, env=None) -> dict:
    """Run ``argv`` with a time limit, its output saved to ``out/<name>.txt``."""
    log = out / f"{name}.txt"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write(f"$ {' '.join(argv)}\n")
        f.flush()
        try:
            rc = subprocess.run(argv, cwd=ROOT, env=env or _env(), stdout=f,
                                stderr=subprocess.STDOUT, timeout=budget).returncode
        except subprocess.TimeoutExpired:
            rc = "TIMEOUT"
    seconds = time.perf_counter() - t0
    with open(log, "a") as f:
        f.write(f"\n=== {name}: rc={rc}, {seconds:.0f} s (budget {budget:.0f} s)\n")
    return {"part": name, "rc": rc, "seconds": round(seconds, 1), "log": log.name}


ENV_SCRIPT = r"""
import json, os, platform, sys
from importlib import metadata
import jax, jax.numpy as jnp
info = {"python": platform.python_version(), "platform": platform.platform()}
for dist in ("jax", "jaxlib", "flax", "optax", "numpy", "orbax-checkpoint", "torch",
             "mnist1d"):
    try:
        info[dist] = metadata.version(dist)
    except metadata.PackageNotFoundError:
        info[dist] = None
info["backend"] = jax.default_backend()
info["devices"] = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
info["default_matmul_precision"] = jax.config.jax_default_matmul_precision or "default"
info["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "")
# what the default precision does here: a product of float32s that bfloat16/TF32 round
a = jnp.full((256, 256), 1 + 2 ** -12, jnp.float32)
exact = float(jnp.dot(a, a, precision="highest")[0, 0])
fast = float(jnp.dot(a, a)[0, 0])
info["default_product_rel_error"] = abs(fast - exact) / exact
info["default_precision_is"] = ("float32" if fast == exact else
                                "reduced (TF32 or bfloat16 passes)")
print(json.dumps(info, indent=2))
"""


def part_env(out: Path, budget: float) -> dict:
    res = run("env", [sys.executable, "-c", ENV_SCRIPT], out, budget)
    text = (out / "env.txt").read_text()
    try:
        res["info"] = json.loads(text[text.index("{"):text.rindex("}") + 1])
    except ValueError:
        res["info"] = {}
    return res


def part_tests(out: Path, budget: float, quick: bool, workers: int) -> dict:
    argv = [sys.executable, "-m", "pytest", "-q", "-m", "not slow and not notebook",
            "-p", "no:cacheprovider",
            f"--junitxml={out / 'tests-junit.xml'}"]
    try:
        import xdist  # noqa: F401
        argv += ["-n", str(workers)]
    except ImportError:
        pass
    argv += ["tests/test_architecture.py", "tests/test_readme.py"] if quick else ["tests"]
    res = run("tests", argv, out, budget)
    tail = (out / "tests.txt").read_text()[-20000:]
    counts = re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail)
    res["counts"] = {k: int(v) for v, k in counts}
    res["failed"] = re.findall(r"^FAILED (\S+)", tail, re.M)
    return res


NOTEBOOK_SCRIPT = r"""
import json, os, sys, time, traceback
path = sys.argv[1]
nb = json.load(open(path))
os.chdir(os.path.dirname(os.path.abspath(path)))
g = {"__name__": "__main__"}
t0 = time.perf_counter()
for i, cell in enumerate(nb["cells"]):
    if cell["cell_type"] != "code":
        continue
    lines = "".join(cell["source"]).splitlines()
    src = "\n".join(l for l in lines if not l.lstrip().startswith(("%", "!")))
    try:
        exec(compile(src, f"{os.path.basename(path)}[cell {i}]", "exec"), g)
    except BaseException:
        print(f"FAIL {os.path.basename(path)} cell {i} after {time.perf_counter() - t0:.1f} s")
        traceback.print_exc(limit=8)
        sys.exit(1)
print(f"ok {os.path.basename(path)} {time.perf_counter() - t0:.1f} s")
"""


def part_notebooks(out: Path, budget: float, quick: bool, workers: int) -> dict:
    notebooks = sorted((ROOT / "colab").glob("[0-9][0-9]_*.ipynb"))
    if quick:
        notebooks = notebooks[:2]
    env = {**_env(), "JAXZOO_SMOKE": "1"}
    (out / "notebooks").mkdir(exist_ok=True)
    deadline = time.perf_counter() + budget

    def one(path):
        left = max(1.0, deadline - time.perf_counter())
        return run(f"notebooks/{path.stem}", [sys.executable, "-c", NOTEBOOK_SCRIPT, str(path)],
                   out, left, env)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(one, notebooks))
    lines = [f"{r['part'].split('/')[-1]:32} rc={r['rc']} {r['seconds']:.0f} s" for r in results]
    (out / "notebooks.txt").write_text("\n".join(lines) + "\n")
    ok = [r for r in results if r["rc"] == 0]
    return {"part": "notebooks", "rc": 0 if len(ok) == len(results) else 1,
            "seconds": round(time.perf_counter() - t0, 1), "log": "notebooks.txt",
            "counts": {"passed": len(ok), "failed": len(results) - len(ok)},
            "failed": [r["part"] for r in results if r["rc"] != 0]}


def speed_parts(quick: bool) -> dict:
    py = sys.executable
    return {
        "lstm": [py, "benchmarks/bench_lstm.py", "--reps", "5" if quick else "20"],
        "loop": [py, "benchmarks/bench_loop.py", "--quick"] + (["--no-seeds"] if quick else []),
        "mnist1d": [py, "benchmarks/bench_mnist1d.py", "--seeds", "1", "--only", "flax"]
        if quick else [py, "benchmarks/bench_mnist1d.py", "--seeds", "1"],
        "sweep": [py, "benchmarks/bench_sweep.py", "--quick"] if quick else
                 [py, "benchmarks/bench_sweep.py", "--epochs", "1", "--one-by-one", "3"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="output folder (default accelerator-check-<backend>-<time>)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"some of {', '.join(PARTS)}")
    ap.add_argument("--quick", action="store_true",
                    help="a rehearsal of the plumbing: a few tests, two notebooks, short "
                         "benchmarks")
    ap.add_argument("--budget-scale", type=float, default=1.0,
                    help="multiply every part's time budget (e.g. 4 on a 2-core CPU)")
    ap.add_argument("--workers", type=int, default=None,
                    help="pytest-xdist workers and notebooks at a time (default: from the CPU "
                         "count)")
    args = ap.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown parts {unknown}; known: {', '.join(PARTS)}")
    budgets = {k: v * args.budget_scale for k, v in BUDGETS.items()}
    cpus = os.cpu_count() or 2
    workers = args.workers or max(1, min(8, cpus // 2))
    out = Path(args.out or f"accelerator-check-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    if "env" in parts:
        results.append(part_env(out, budgets["env"]))
    side_by_side = []
    with ThreadPoolExecutor(2) as pool:
        if "tests" in parts:
            side_by_side.append(pool.submit(part_tests, out, budgets["tests"], args.quick,
                                            workers))
        if "notebooks" in parts:
            side_by_side.append(pool.submit(part_notebooks, out, budgets["notebooks"],
                                            args.quick, max(1, workers // 2)))
        results += [f.result() for f in side_by_side]
    for name, argv_ in speed_parts(args.quick).items():
        if name in parts:
            results.append(run(name, argv_, out, budgets[name]))
    total = time.perf_counter() - t0
    summary = _summary(results, out, total)
    (out / "summary.txt").write_text(summary)
    (out / "summary.json").write_text(json.dumps({"results": results, "seconds": total},
                                                 indent=2, default=str))
    print(summary)
    return 0 if all(r["rc"] == 0 for r in results) else 1


def _tables(log: Path) -> str:
    """The tables of a benchmark's log: its lines from the first table header on."""
    text = log.read_text() if log.exists() else ""
    lines = [line for line in text.splitlines()
             if not line.startswith(("$ ", "WARNING", "W0", "I0")) and "Warning" not in line]
    return "\n".join(lines[:80])


def _summary(results, out: Path, total: float) -> str:
    rows = [f"accelerator check: {out}", f"total {total:.0f} s", ""]
    for r in results:
        rows.append(f"{r['part']:10} rc={r['rc']!s:8} {r['seconds']:6.0f} s  {r.get('log', '')}")
        if r.get("counts"):
            rows.append(f"{'':10} {r['counts']}")
        for f in r.get("failed", [])[:40]:
            rows.append(f"{'':10} FAILED {f}")
        if r["part"] == "env":
            rows += [f"{'':10} {k}: {v}" for k, v in r.get("info", {}).items()]
    for name in ("lstm", "loop", "mnist1d", "sweep"):
        if any(r["part"] == name for r in results):
            rows += ["", f"--- {name}", _tables(out / f"{name}.txt")]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main())
