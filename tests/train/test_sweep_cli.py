"""``zoo sweep``: the notes' coarse-to-fine search from the command line, resumable."""

import csv
import json

import numpy as np
import pytest

from train import cli

ARGS = ["sweep", "logistic-binary", "--lr", "1e-2:1:log", "--trials", "3", "--seeds", "2",
        "--rounds", "2", "--epochs", "4", "--quiet"]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "full"
    assert cli.main([*ARGS, "--out", str(out)]) == 0
    return out


def test_sweep_writes_its_files_and_ranks_by_the_mean_over_seeds(finished):
    rows = _rows(finished / "results.csv")
    assert len(rows) == 3 * 2 * 2                              # trials x seeds x rounds
    assert {r["round"] for r in rows} == {"0", "1"} and {r["seed"] for r in rows} == {"0", "1"}
    means = {}
    for r in rows:   # the score is the mean over seeds of the final val_accuracy
        means.setdefault(r["lr"], []).append(float(r["val_accuracy"]))
        assert float(r["score"]) == pytest.approx(np.mean(means[r["lr"]]) if len(
            means[r["lr"]]) == 2 else float(r["score"]))
    best = json.loads((finished / "best" / "config.json").read_text())
    assert best["metric"] == "val_accuracy"
    assert best["score"] == pytest.approx(max(np.mean(v) for v in means.values()))
    assert (finished / "score_lr.png").read_bytes()[:4] == b"\x89PNG"
    for seed in (0, 1):
        history = [json.loads(line) for line in
                   (finished / "best" / f"history_seed{seed}.jsonl").read_text().splitlines()]
        assert len(history) == 4 and "val_accuracy" in history[-1]
    manifest = json.loads((finished / "manifest.json").read_text())
    assert manifest["config"]["sweep"]["ranges"]["lr"] == [0.01, 1.0, "log"]


def test_resume_after_a_kill_trains_only_what_is_missing(finished, tmp_path):
    out = tmp_path / "killed"
    out.mkdir()
    lines = (finished / "trials.jsonl").read_text().splitlines(keepends=True)
    # killed while writing: four whole trials and half a line on disk
    (out / "trials.jsonl").write_text("".join(lines[:4]) + lines[4][:40])
    assert cli.main([*ARGS, "--out", str(out), "--resume"]) == 0
    resumed, full = _rows(out / "results.csv"), _rows(finished / "results.csv")
    keys = lambda rows: [(r["lr"], r["seed"], r["round"]) for r in rows]   # noqa: E731
    assert keys(resumed) == keys(full)          # the same search, the same configurations
    done = {line.split('"key": ')[1].split(', "history"')[0] for line in lines[:4]}
    kept = 0
    for r, f in zip(resumed, full, strict=True):
        key = json.dumps([{"lr": float(r["lr"])}, int(r["seed"])], sort_keys=True)
        if json.dumps(key) in done:             # finished before the kill: kept as they were
            assert r == f
            kept += 1
        else:                                   # trained again, in other chunks: up to rounding
            assert float(r["val_loss"]) == pytest.approx(float(f["val_loss"]), rel=1e-5)
    assert kept == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["summary"]["resumed_trials"] == 4


@pytest.mark.parametrize("argv, words", [
    (["--out", "{used}"], "already holds a sweep"),
    (["--out", "{fresh}", "--resume"], "nothing to resume"),
    (["--param", "nope=0:1"], "no hyperparameter 'nope'"),
    (["--weight-decay", "0:0.1"], "has no weight decay"),
])
def test_bad_sweeps_are_one_error_line(finished, tmp_path, capsys, argv, words):
    argv = [a.format(used=finished, fresh=tmp_path / "fresh") for a in argv]
    assert cli.main([*ARGS, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and words in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, words", [
    (["sweep", "logistic-binary", "--lr", "1:0.1"], "LOW < HIGH"),
    (["sweep", "logistic-binary", "--lr", "0:1:log"], "log scale needs LOW > 0"),
    (["sweep", "logistic-binary", "--lr", "0.1:0.9:sqrt"], "scale among"),
])
def test_bad_ranges_are_usage_errors(capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_models_with_their_own_driver_are_refused(capsys, tmp_path):
    assert cli.main(["sweep", "gan", "--lr", "1e-4:1e-3:log", "--out", str(tmp_path / "g"),
                     "--quiet"]) == 2
    assert "trains with its own driver" in capsys.readouterr().err
