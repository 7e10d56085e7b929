"""Measure a registry entry's expected result: ``zoo train NAME --seed S`` for seeds 0-2.

    python benchmarks/measure_expected.py NAME [NAME ...] [--seeds 0 1 2] [--dataset D]
        [--data-option KEY=VALUE ...] [--jsonl FILE]

Each run goes through the same path as the command line (``train.cli.resolve``, then the
entry's driver's ``train``), with a fresh temporary ``--out`` and ``--quiet``. For every
numeric value of the runs' summaries the script prints mean +- std over the seeds (population
std, ``ddof=0``; with three seeds it is the spread, not a confidence interval), the entry's
headline metrics first (:data:`HEADLINES`), and the wall time of each run (the first includes
compilation). ``--jsonl`` appends one line per entry with every summary, so the registry's
``expected`` text and ``docs/projects.md`` can be checked against the raw numbers.

Not run by CI: the slowest entries take minutes per seed on a 2-core CPU. Run one at a time
under ``nice`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from train import cli, drivers  # noqa: E402

# summary keys that state an entry's result, by entry name, else by task
HEADLINES = {
    "transfer": ("mask_test_accuracy", "scratch_test_accuracy"),
    "gan": ("modes_covered", "high_quality"),
    "dcgan": ("frechet_generated", "frechet_train", "test_loss"),
    "dcgan-faces": ("frechet_generated", "frechet_train", "test_loss"),
    "adding-lstm": ("test_solved", "test_mse"),
    "adding-rnn": ("test_solved", "test_mse"),
    "reber-lstm": ("test_string_accuracy",),
    "reber-rnn": ("test_string_accuracy",),
    "mlp-regression": ("test_mse", "test_loss"),
    "bike-sharing": ("test_loss", "val_loss"),
    "linear": ("test_mse",),
}
TASK_HEADLINES = {
    "classification": ("test_accuracy",),
    "regression": ("test_mse", "test_loss"),
    "reconstruction": ("test_mse", "test_noisy_mse"),
    "translation": ("test_exact_match", "test_bleu"),
    "embedding": ("analogy_accuracy", "neighbour_purity"),
    "generation": ("test_bits_per_char", "test_bpc_over_floor", "test_bits_per_word",
                   "test_bpw_over_floor"),
}
SKIP = {"epochs", "steps", "param_count", "seed"}


def headlines(spec) -> tuple[str, ...]:
    return HEADLINES.get(spec.name, TASK_HEADLINES.get(spec.task, ()))


def run_one(name: str, seed: int, dataset: str | None, data_options: list[str]) -> dict:
    """One ``zoo train NAME --seed SEED --quiet`` in a temporary folder; its summary and the
    wall time (``wall_seconds``, data loading and compilation included)."""
    argv = ["train", name, "--seed", str(seed), "--quiet"]
    if dataset:
        argv += ["--dataset", dataset]
    for option in data_options:
        argv += ["--data-option", option]
    with tempfile.TemporaryDirectory() as out:
        args = cli.build_parser().parse_args(argv + ["--out", out])
        spec, opts = cli.resolve(args)
        t0 = time.perf_counter()
        summary = drivers.call(spec, opts, "train")   # at the run's precision, as zoo does
        summary = dict(summary, wall_seconds=time.perf_counter() - t0, seed=seed)
    return summary


def numeric(summary: dict) -> dict:
    return {k: float(v) for k, v in summary.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in SKIP}


def report(spec, summaries: list[dict]) -> list[str]:
    """Lines ``key  mean +- std  (values)`` over the seeds, headlines first."""
    rows = [numeric(s) for s in summaries]
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    first = [k for k in headlines(spec) if k in keys]
    lines = []
    for k in first + [k for k in keys if k not in first]:
        values = np.array([r[k] for r in rows])
        mark = "*" if k in first else " "
        lines.append(f"{mark} {k:32s} {values.mean():.4g} +- {values.std():.2g}   "
                     f"({', '.join(f'{v:.4g}' for v in values)})")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+", help="registry entries ('all' for every one)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--dataset")
    p.add_argument("--data-option", action="append", default=[], dest="data_options")
    p.add_argument("--jsonl", help="append one JSON line per entry to this file")
    args = p.parse_args(argv)
    from zoo import registry

    names = registry.names() if args.names == ["all"] else args.names
    for name in names:
        spec = registry.get(name)
        t0 = time.perf_counter()
        summaries = [run_one(name, s, args.dataset, args.data_options) for s in args.seeds]
        total = time.perf_counter() - t0
        dataset = summaries[0].get("dataset")
        per_seed = ", ".join(f"{s['wall_seconds']:.0f}" for s in summaries)
        print(f"\n{name} on {dataset}, seeds {args.seeds}: {total:.0f} s in all "
              f"({per_seed} s per seed); * = headline")
        print("\n".join(report(spec, summaries)), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps({"name": name, "dataset": dataset, "seeds": args.seeds,
                                    "total_seconds": total, "when": time.strftime("%Y-%m-%d"),
                                    "summaries": [numeric(s) for s in summaries]}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
