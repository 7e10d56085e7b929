"""The ``zoo`` command: argument parsing, option resolution, and dispatch to a driver.

    zoo list
    zoo train NAME [--dataset D] [--optimizer O] [--lr X] [--schedule S] [--weight-decay W]
                   [--batch-size B] [--epochs E] [--seed S] [--precision P] [--out DIR]
                   [--resume] [--allow-changes] [--quiet]
    zoo eval NAME --checkpoint DIR
    zoo sample NAME --checkpoint DIR [--prime TEXT] [--length N] [--temperature T]
                    [--top-k K] [--seed S]
    zoo sweep NAME --lr LO:HI[:log] [--weight-decay LO:HI] [--param NAME=LO:HI[:SCALE]]
                   [--trials N] [--seeds S] [--rounds R] [--top-k K] [--metric M]
                   [--out DIR] [--resume] (and train's --dataset, --optimizer, --epochs, ...)
    zoo gradients [--out DIR]
    zoo translate --checkpoint DIR [--beam K] [--alpha A] [--all] "some input" ...

Options resolve in three layers (:func:`resolve`): the registry entry's defaults
(``zoo.registry``), then a saved run's ``run.json`` (``zoo eval``, ``zoo sample``,
``--resume``), then the command line. The entry's driver (``train.drivers``) does the work and
writes the run folder (``train.runs``: ``run.json``, ``metrics.jsonl``, ``checkpoints/``,
``summary.json``, ``loss.png``, ``manifest.json``).

Every expected failure (an unknown model, dataset, dataset option or optimizer, a negative
learning rate, a dataset the model cannot use, an ``--out`` that is a file or cannot be
created, a damaged ``run.json`` or checkpoint, a ``--resume`` that would not continue the same
run, a run folder another run is writing, a non-finite training step, a full disk, ...) prints
one line ``zoo: error: ...`` (with the closest names for a misspelling) and exits with status
2; warnings (a damaged checkpoint skipped for an older one, a stale lock taken over) print as
one line ``zoo: warning: ...`` each. ``zoo train`` is the one writer of its ``--out`` while it
runs (``train.runs.writing``).

Extending: a new subcommand is one ``(help, add_arguments, run)`` entry in :data:`COMMANDS`;
a model with its own loop is a driver (``train.drivers``), named by its registry entry.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from train import console, drivers, optimizers, runs
from train.drivers import data
from train.errors import UsageError
from train.runs import RunOptions

__all__ = ["COMMANDS", "UsageError", "RunOptions", "build_parser", "main", "resolve"]


# --------------------------------------------------------------------------------------------
# Resolution: registry defaults, then a saved run's options, then the command line


def _spec(name: str):
    from zoo import registry

    try:
        return registry.get(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def resolve(args: argparse.Namespace, *, saved: Mapping | None = None) -> tuple[Any, RunOptions]:
    """``(spec, RunOptions)``: the entry's defaults, then ``saved`` (a run's ``run.json``),
    then the command line; names and combinations are checked here, before any work."""
    spec = _spec(args.name)
    base = {"dataset": spec.dataset, "optimizer": spec.optimizer, "lr": spec.lr,
            "schedule": spec.schedule, "weight_decay": spec.weight_decay,
            "batch_size": spec.batch_size, "epochs": spec.epochs, "seed": 0,
            "precision": "default"}
    if saved:
        base.update({k: saved[k] for k in base if k in saved})
    given = {k: getattr(args, k, None) for k in base}
    values = {**base, **{k: v for k, v in given.items() if v is not None}}
    if values["batch_size"] == "full":
        values["batch_size"] = None
    if saved and values["dataset"] == saved.get("dataset"):
        options = dict(saved.get("dataset_options", {}))
    else:
        options = dict(spec.dataset_options) if values["dataset"] == spec.dataset else {}
    options.update(dict(getattr(args, "data_options", None) or []))
    note = None
    if not saved and given["dataset"] is None:
        # an entry for real data trains on its generated stand-in when the files are absent
        values["dataset"], options, note = data.choose_dataset(spec, options)
    if values["optimizer"] not in optimizers.OPTIMIZERS:
        optimizers.make_optimizer(values["optimizer"], 1.0)   # raises with close matches
    optimizers.make_schedule(values["schedule"], 1.0, 1)     # likewise (a registry typo)
    if (values["weight_decay"] is not None
            and not optimizers.takes_weight_decay(values["optimizer"])):
        if given["weight_decay"] is not None:
            optimizers.make_optimizer(values["optimizer"], 1.0,
                                      weight_decay=values["weight_decay"])
        # A default decay belongs to the default optimizer: --optimizer adam on an adamw
        # entry trains without one.
        values["weight_decay"] = None
    if spec.driver != "standard" and (given["schedule"] is not None
                                      or given["weight_decay"] is not None):
        raise UsageError(f"model {spec.name!r} trains with its own driver ({spec.driver}); "
                         "--schedule and --weight-decay apply to the standard driver only")
    out = getattr(args, "out", None) or os.path.join("runs", spec.name)
    opts = RunOptions(name=spec.name, dataset=values["dataset"], dataset_options=options,
                      optimizer=values["optimizer"], lr=float(values["lr"]),
                      batch_size=values["batch_size"], epochs=int(values["epochs"]),
                      seed=int(values["seed"]), schedule=values["schedule"],
                      weight_decay=(None if values["weight_decay"] is None
                                    else float(values["weight_decay"])), out=out,
                      resume=bool(getattr(args, "resume", False)),
                      allow_changes=bool(getattr(args, "allow_changes", False)),
                      quiet=bool(getattr(args, "quiet", False)),
                      precision=values["precision"],
                      checkpoint=getattr(args, "checkpoint", None))
    if note and not opts.quiet:   # said once, here; not an option of the run (run.json)
        print(f"zoo: {note}", file=sys.stderr)
    return spec, opts


def _resolve_saved_run(args: argparse.Namespace) -> tuple[Any, RunOptions]:
    """Spec and options of the run in ``--checkpoint`` (its saved options under the command
    line's); the run must belong to the model named on the command line."""
    run_dir, _ = runs.find_run(args.checkpoint)
    saved = runs.read_run_json(run_dir)
    spec, opts = resolve(args, saved=saved)
    if saved.get("name") not in (None, spec.name):
        raise UsageError(f"{args.checkpoint!r} holds a {saved['name']!r} run, not {spec.name!r}")
    return spec, opts


# --------------------------------------------------------------------------------------------
# Argument types


def _number(text: str, *, low: float, low_open: bool) -> float:
    words = f"a number {'>' if low_open else '>='} {low:g}"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
    if not math.isfinite(value) or value < low or (low_open and value == low):
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, low=0.0, low_open=True)


def _nonnegative_float(text: str) -> float:
    return _number(text, low=0.0, low_open=False)


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got "
                                             f"{text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    return parse


def _seed(text: str) -> int:
    value = _int_at_least(0)(text)
    if value >= runs.SEED_LIMIT:   # jax keeps a seed's low 32 bits: 2**32 would be seed 0
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {text!r}")
    return value


def _path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return text


def _batch_size(text: str):
    if text.lower() in ("full", "all", "none"):
        return "full"
    return _int_at_least(1)(text)


def _data_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name (see 'zoo list')")
    p.add_argument("--dataset", help="dataset name (default: the model's)")
    p.add_argument("--optimizer", help=f"one of {', '.join(optimizers.OPTIMIZERS)}")
    p.add_argument("--lr", type=_positive_float, help="learning rate (the peak of a schedule)")
    p.add_argument("--schedule", choices=optimizers.SCHEDULES,
                   help="learning-rate schedule over the run: constant, cosine (to 0), or step "
                        "(lr / 10 for the last fifth of the steps)")
    p.add_argument("--weight-decay", type=_nonnegative_float, dest="weight_decay",
                   help="decoupled weight decay (optimizers with one: adamw, lamb, adadelta)")
    p.add_argument("--batch-size", type=_batch_size, help="examples per step, or 'full'")
    p.add_argument("--epochs", type=_int_at_least(0), help="number of epochs")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--precision", choices=("default", "high", "highest"),
                   help="float32 matrix products and convolutions: the backend's fast "
                        "default (TF32 on NVIDIA GPUs, one bfloat16 pass on TPUs), or more "
                        "exact; recorded in the run's manifest (default: default)")
    p.add_argument("--data-option", action="append", type=_data_option, default=[],
                   dest="data_options", metavar="KEY=VALUE",
                   help="option for the dataset's loader, repeatable (e.g. path=input.txt, "
                        "n_train=2000); values are read as JSON when they parse, else text")


def _print_table(rows: list[list[str]], header: list[str], file=None) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
    print(line(header), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in rows:
        print(line(r), file=file)


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------
# Commands


def _list_arguments(p: argparse.ArgumentParser) -> None:
    del p


def _list_run(args: argparse.Namespace) -> int:
    from zoo import registry

    rows = []
    for s in registry.specs():
        dataset = s.dataset if s.standin is None else f"{s.dataset} (else {s.standin})"
        rows.append([s.name, dataset, s.task, s.expected_for(s.standin or s.dataset)])
    _print_table(rows, ["name", "dataset", "task", "expected result"])
    return 0


def _train_arguments(p: argparse.ArgumentParser) -> None:
    _add_run_arguments(p)
    p.epilog = ("metrics.jsonl logs val_* metrics on the validation split, or on the test "
                "split when the dataset has none (mnist1d, digits, ...).")
    p.add_argument("--out", type=_path, help="output directory (default runs/NAME)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest intact checkpoint; refused "
                        "when the data or an option that changes the result differs")
    p.add_argument("--allow-changes", action="store_true", dest="allow_changes",
                   help="with --resume: continue even with other data or options (the "
                        "changes are recorded in fingerprint.json and the manifest)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary table")


def _train_run(args: argparse.Namespace) -> int:
    saved = None
    if args.allow_changes and not args.resume:
        raise UsageError("--allow-changes applies to --resume only")
    if args.resume:
        run_dir = args.out or os.path.join("runs", _spec(args.name).name)
        if not os.path.isfile(os.path.join(run_dir, runs.RUN_FILE)):
            raise UsageError(f"--resume: there is no run to resume in {run_dir!r} (no "
                             f"{runs.RUN_FILE}); leave out --resume to start one")
        saved = runs.read_run_json(run_dir)
    spec, opts = resolve(args, saved=saved)
    with runs.writing(opts.out):
        summary = drivers.call(spec, opts, "train")
    if not opts.quiet:
        print(f"\nzoo train {spec.name} on {opts.dataset}: expected "
              f"{spec.expected_for(opts.dataset)}")
        _print_table([[k, _format(v)] for k, v in summary.items()
                      if k not in ("model", "dataset", "expected")], ["summary", "value"])
        print(f"files in {opts.out}")
    return 0


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name (see 'zoo list')")
    p.add_argument("--checkpoint", required=True, type=_path,
                   help="the --out directory of a 'zoo train' run (or its checkpoints/)")


def _eval_run(args: argparse.Namespace) -> int:
    spec, opts = _resolve_saved_run(args)
    metrics = drivers.call(spec, opts, "evaluate")
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name (see 'zoo list'; models with a sampler)")
    p.add_argument("--checkpoint", required=True, type=_path,
                   help="the --out directory of a 'zoo train' run (or its checkpoints/)")
    p.add_argument("--prime", help="priming text (default: the model's choice)")
    p.add_argument("--length", type=_int_at_least(1), default=200,
                   help="tokens to generate (default 200)")
    p.add_argument("--temperature", type=_nonnegative_float, default=1.0,
                   help="softmax temperature; 0 is greedy (default 1)")
    p.add_argument("--top-k", type=_int_at_least(1), dest="top_k",
                   help="sample among the K most likely tokens")
    p.add_argument("--seed", type=_seed, default=0, dest="sample_seed",
                   help="sampling seed (default 0)")
    p.add_argument("-n", "--num-samples", type=_int_at_least(1), default=64, dest="n",
                   help="samples to draw, for generators of images or points (default 64)")
    p.add_argument("--output", type=_path,
                   help="file for the samples (generators write a PNG; default samples.png in "
                        "the run directory)")


def _sample_run(args: argparse.Namespace) -> int:
    from zoo import registry

    spec, opts = _resolve_saved_run(args)
    driver = drivers.get(spec.driver)
    if not hasattr(driver, "sample"):
        with_sampler = [s.name for s in registry.specs()
                        if hasattr(drivers.get(s.driver), "sample")]
        raise UsageError(f"model {spec.name!r} has no sampler; models with one: "
                         f"{', '.join(with_sampler) or 'none'}")
    opts.extra = {"prime": args.prime, "length": args.length, "temperature": args.temperature,
                  "top_k": args.top_k, "seed": args.sample_seed, "n": args.n,
                  "output": args.output}
    drivers.call(spec, opts, "sample")
    return 0


def _gradients_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=_path, default=os.path.join("runs", "gradients"),
                   help="output directory (default runs/gradients)")
    p.add_argument("--depth", type=_int_at_least(2), default=10, help="dense layers")
    p.add_argument("--seed", type=_seed, default=0)


def _gradients_run(args: argparse.Namespace) -> int:
    from train.drivers.gradients import write_study

    table, path = write_study(args.out, depth=args.depth, seed=args.seed)
    rows = [[k, f"{v[0]:.3g}", f"{v[-1]:.3g}", f"{v[0] / v[-1]:.3g}"] for k, v in table.items()]
    _print_table(rows, ["activation/init", "layer 1", f"layer {args.depth}", "ratio"])
    print(f"figure: {path}")
    return 0


def _translate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="+", help="source sentence(s) to translate")
    p.add_argument("--checkpoint", required=True, type=_path,
                   help="the --out directory of a 'zoo train' run of a translation model")
    p.add_argument("--beam", type=_int_at_least(1), default=4,
                   help="beam width; 1 decodes greedily (default 4)")
    p.add_argument("--alpha", type=_nonnegative_float, default=0.6,
                   help="length-penalty exponent of beam search (default 0.6)")
    p.add_argument("--max-length", type=_int_at_least(1), help="decoding steps")
    p.add_argument("--all", action="store_true", help="print every beam with its score")


def _translate_run(args: argparse.Namespace) -> int:
    from train.drivers import translation

    _, _, ds, cfg, params = translation.restore_run(args.checkpoint)
    try:
        results = translation.translate(params, cfg, ds, args.text, beam_size=args.beam,
                                        alpha=args.alpha, max_length=args.max_length)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for text, beams in zip(args.text, results, strict=True):
        if args.all:
            print(text)
            for out, score in beams:
                print(f"  {score:9.4f}  {out}")
        else:
            print(beams[0][0])
    return 0


def _range(text: str) -> tuple:
    from train.drivers.sweep import parse_range

    try:
        return parse_range(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _named_range(text: str) -> tuple:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=LO:HI[:SCALE], got {text!r}")
    return name, _range(value)


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name (see 'zoo list'; standard entries)")
    p.add_argument("--dataset", help="dataset name (default: the model's)")
    p.add_argument("--optimizer", help=f"one of {', '.join(optimizers.OPTIMIZERS)}")
    p.add_argument("--schedule", choices=optimizers.SCHEDULES, help="learning-rate schedule")
    p.add_argument("--batch-size", type=_batch_size, help="examples per step, or 'full'")
    p.add_argument("--epochs", type=_int_at_least(1), help="epochs per trial")
    p.add_argument("--precision", choices=("default", "high", "highest"))
    p.add_argument("--data-option", action="append", type=_data_option, default=[],
                   dest="data_options", metavar="KEY=VALUE")
    p.add_argument("--lr", type=_range, dest="lr_range", metavar="LO:HI[:SCALE]",
                   help="learning-rate range, e.g. 1e-4:1e-1:log (scales: lin, log, 1-log)")
    p.add_argument("--weight-decay", type=_range, dest="wd_range", metavar="LO:HI[:SCALE]",
                   help="weight-decay range (optimizers with one)")
    p.add_argument("--param", action="append", type=_named_range, default=[], dest="ranges",
                   metavar="NAME=LO:HI[:SCALE]",
                   help="another hyperparameter of the optimizer, e.g. b1=0.8:0.99:1-log")
    p.add_argument("--trials", type=_int_at_least(1), default=16,
                   help="configurations per round (default 16)")
    p.add_argument("--seeds", type=_int_at_least(1), default=1,
                   help="seeds per configuration (default 1)")
    p.add_argument("--rounds", type=_int_at_least(1), default=2,
                   help="rounds, coarse to fine (default 2)")
    p.add_argument("--top-k", type=_int_at_least(1), default=3, dest="top_k",
                   help="best configurations the next round zooms around (default 3)")
    p.add_argument("--metric", help="validation metric to rank by (default val_accuracy for "
                                    "classifiers, else val_loss)")
    p.add_argument("--mode", choices=("min", "max"), help="default: max for accuracies")
    p.add_argument("--search-seed", type=_int_at_least(0), default=0, dest="search_seed")
    p.add_argument("--chunk-size", type=_int_at_least(1), dest="chunk_size",
                   help="trials per vmapped program (default: what fits in memory)")
    p.add_argument("--out", help="output directory (default runs/sweep-NAME)")
    p.add_argument("--resume", action="store_true",
                   help="continue a sweep in --out (finished trials are not trained again)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _sweep_run(args: argparse.Namespace) -> int:
    from train.drivers import sweep
    from train.loop.settings import precision_scope

    spec = _spec(args.name)
    ranges = dict(args.ranges)
    for name, value in (("lr", args.lr_range), ("weight_decay", args.wd_range)):
        if value is not None:
            ranges[name] = value
    base = argparse.Namespace(**{**vars(args), "lr": None, "weight_decay": None, "seed": 0,
                                 "out": None, "resume": False})
    spec, opts = resolve(base)
    out = args.out or os.path.join("runs", f"sweep-{spec.name}")
    sweep_opts = sweep.SweepOptions(ranges=ranges, trials=args.trials, seeds=args.seeds,
                                    rounds=args.rounds, top_k=args.top_k, metric=args.metric,
                                    mode=args.mode, search_seed=args.search_seed,
                                    chunk_size=args.chunk_size)
    with precision_scope(opts.precision if opts.precision != "default" else None, "zoo"):
        summary = sweep.sweep(spec, opts, sweep_opts, out=out, resume=args.resume,
                              progress=not args.quiet)
    if not args.quiet:
        print(f"\nzoo sweep {spec.name}: best {summary['metric']} "
              f"{summary['best_score']:.4g} at {summary['best_config']}")
        print(f"files in {out}")
    return 0


# name -> (help, add_arguments(parser), run(args) -> exit status)
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "list": ("list the zoo's models", _list_arguments, _list_run),
    "train": ("train a model on its embedded default data", _train_arguments, _train_run),
    "eval": ("evaluate a trained model's checkpoint", _eval_arguments, _eval_run),
    "sample": ("generate text, points or images from a trained model's checkpoint",
               _sample_arguments, _sample_run),
    "sweep": ("random search of hyperparameters, coarse to fine, trials trained together",
              _sweep_arguments, _sweep_run),
    "gradients": ("per-layer gradient norms at init (vanishing / exploding gradients)",
                  _gradients_arguments, _gradients_run),
    "translate": ("translate text with a trained seq2seq model", _translate_arguments,
                  _translate_run),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line ``zoo: error: ...`` (exit status 2) instead of the
    usage block and the error."""

    def error(self, message: str):
        self.exit(2, f"zoo: error: {message} (see '{self.prog} -h')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``zoo`` argument parser with one subparser per entry of :data:`COMMANDS`."""
    parser = _Parser(prog="zoo", description="Train and evaluate jaxzoo models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def _error_line(e: BaseException) -> str | None:
    """The one line of an expected failure, or None for a bug (shown with its traceback)."""
    if isinstance(e, (UsageError, FloatingPointError)):   # FloatingPointError: NonFiniteError
        return str(e)
    if isinstance(e, (FileNotFoundError, ValueError)) and "train.checkpoint" in sys.modules:
        # a damaged checkpoint met by a driver's own code, or a --resume with other data
        # settings than the run it continues (fit's check)
        from train.loop import ResumeMismatchError

        if isinstance(e, ResumeMismatchError):
            return str(e)
        message = runs.checkpoint_message(e)
        if message is not None:
            return message
    if isinstance(e, OSError):   # a full disk, no permission, a path that cannot be made
        where = f": {e.filename!r}" if e.filename else ""
        return f"{e.strerror or e}{where}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zoo`` console script; returns the exit status (2 and one line
    ``zoo: error: ...`` on stderr for every expected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)      # argparse exits with status 2 on bad syntax
    with console.quiet_libraries() as held:
        try:
            return int(args._run(args) or 0)
        except KeyboardInterrupt:
            print("zoo: interrupted", file=sys.stderr)
            return 130
        except Exception as e:
            message = _error_line(e)
            if message is None:
                for record in held.records:   # they may explain the bug
                    print(held.format(record), file=sys.stderr)
                raise
            print(f"zoo: error: {console.one_line(message)}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
