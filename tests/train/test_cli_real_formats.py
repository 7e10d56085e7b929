"""Every real file format through the ``zoo`` command: small files written here in the
published formats (IDX, CIFAR-10 binary, hour.csv, a plain-text script, tab-separated pairs,
text8), then ``zoo train`` for one epoch of a tiny run and the matching ``eval`` /
``sample`` / ``translate``, each exiting 0 and writing its files. In process through
``train.cli.main``, except hour.csv, which goes through the console entry point in a
subprocess. An image folder: test_face_generation.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.train.test_datasets_formats import (  # the autouse fixture: a private, empty cache
    _no_network_and_private_cache,  # noqa: F401
    write_cifar_tar,
    write_hour_csv,
    write_mnist,
)
from train import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_FILES = ("run.json", "summary.json", "metrics.jsonl", "manifest.json")


def _train(tmp_path, *argv):
    """``zoo train ... --epochs 1 --quiet --out RUN``: the run folder, checked complete."""
    out = tmp_path / "run"
    assert cli.main(["train", *argv, "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    assert any(d.startswith("step_") for d in os.listdir(out / "checkpoints"))
    return out, json.loads((out / "summary.json").read_text())


def _eval(name, out, capsys):
    capsys.readouterr()
    assert cli.main(["eval", name, "--checkpoint", str(out)]) == 0
    return json.loads(capsys.readouterr().out)


def test_idx_mnist_train(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=6, n_test=3)
    _, summary = _train(tmp_path, "mlp", "--dataset", "mnist", "--data-option",
                        f"path={tmp_path / 'mnist'}", "--batch-size", "3")
    assert summary["dataset"] == "mnist" and summary["steps"] == 2
    assert summary["param_count"] == (784 + 1) * 100 + (100 + 1) * 100 + (100 + 1) * 10


def test_cifar_binary_project_entry_reads_the_real_files(tmp_path):
    write_cifar_tar(tmp_path / "cifar", np.random.default_rng(0), n=2)
    _, summary = _train(tmp_path, "cnn-cifar10", "--data-option",
                        f"path={tmp_path / 'cifar'}", "--batch-size", "5")
    assert summary["dataset"] == "cifar10" and summary["steps"] == 2       # 10 records
    assert summary["expected"] == "no measured result for this dataset"
    assert 0 <= summary["test_accuracy"] <= 1


def test_hour_csv_project_entry_in_a_subprocess_and_eval(tmp_path, capsys):
    write_hour_csv(tmp_path / "hour.csv", n_days=90)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    zoo = [sys.executable, "-m", "train.cli"]
    proc = subprocess.run([*zoo, "train", "bike-sharing", "--data-option",
                           f"path={tmp_path / 'hour.csv'}", "--epochs", "1", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "zoo train bike-sharing on bike_sharing: expected no measured result" in proc.stdout
    assert "stand-in" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert {"train_mse", "val_mse", "test_mse"} <= set(summary)
    assert _eval("bike-sharing", out, capsys)["val_mse"] == pytest.approx(summary["val_mse"],
                                                                          rel=1e-6)


SCRIPT = "".join(f"{who}: {line}\n" for who, line in [
    ("JERRY", "Hi, George."), ("GEORGE", "(sighs) I lost the car!"),
    ("ELAINE", "Where is the car?"), ("KRAMER", "Hey, Jerry."),
    ("JERRY", "The car is red."), ("GEORGE", "Did you find the boat?")] * 12)


def test_text_script_word_level_train_and_sample(tmp_path, capsys):
    (tmp_path / "script.txt").write_text(SCRIPT)
    out, summary = _train(tmp_path, "word-lm", "--data-option",
                          f"path={tmp_path / 'script.txt'}", "--batch-size", "2")
    assert summary["dataset"] == "text" and summary["test_perplexity"] > 1
    capsys.readouterr()
    assert cli.main(["sample", "word-lm", "--checkpoint", str(out), "--prime", "kramer",
                     "--length", "6"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("kramer:") and len(text.split()) >= 3


def test_tab_separated_pairs_train_and_translate(tmp_path, capsys):
    pairs = [("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours !"), ("Stop!", "Arrete !"),
             ("I see.", "Je vois."), ("Help!", "A l'aide !")] * 4
    (tmp_path / "eng-fra.txt").write_text("".join(f"{a}\t{b}\tCC-BY 2.0\n" for a, b in pairs))
    out, summary = _train(tmp_path, "seq2seq", "--dataset", "parallel", "--data-option",
                          f"path={tmp_path / 'eng-fra.txt'}", "--batch-size", "8")
    assert summary["dataset"] == "parallel" and 0 <= summary["test_bleu"] <= 100
    capsys.readouterr()
    assert cli.main(["translate", "--checkpoint", str(out), "--beam", "1", "--all",
                     "go ."]) == 0
    lines = capsys.readouterr().out.splitlines()     # the source, then its beam and score
    assert lines[0] == "go ." and len(lines) == 2


def test_text8_word_vectors_train_and_eval(tmp_path, capsys):
    words = "anarchism originated as a term of abuse first used against early working class "
    (tmp_path / "text8").write_bytes((" " + (words * 40).strip()).encode())
    out, summary = _train(tmp_path, "word2vec", "--dataset", "text8", "--data-option",
                          f"path={tmp_path / 'text8'}", "--batch-size", "64")
    assert summary["dataset"] == "text8" and np.isfinite(summary["test_loss"])
    assert _eval("word2vec", out, capsys)["test_loss"] == pytest.approx(summary["test_loss"],
                                                                        rel=1e-5)


# An image folder: tests/train/test_face_generation.py trains `dcgan` on one through the
# command (the crash it fixes) and samples from the run.
