"""The ``zoo`` command end to end: files, summary fields, --resume, eval, and bad arguments."""

import json
import os
import subprocess
import sys

import pytest

from train import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _zoo(*args, check=True):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "train.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_train_resume_eval_end_to_end(tmp_path, capsys):
    out = str(tmp_path / "run")
    _zoo("train", "mlp-digits", "--epochs", "2", "--batch-size", "64", "--out", out,
         "--quiet")
    for name in ("summary.json", "metrics.jsonl", "loss.png", "manifest.json", "run.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert any(d.startswith("step_") for d in os.listdir(os.path.join(out, "checkpoints")))
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    for key in ("test_accuracy", "test_loss", "train_accuracy", "train_loss", "epochs", "steps",
                "seconds", "param_count"):
        assert key in summary, key
    history = _lines(os.path.join(out, "metrics.jsonl"))
    assert [row["epoch"] for row in history] == [0, 1]
    steps_per_epoch = history[0]["step"]
    assert summary["steps"] == 2 * steps_per_epoch
    # The summary's test metrics are the model's on the test split: above chance by far.
    assert summary["test_accuracy"] > 0.5

    # --resume continues the same run to 3 epochs (options come back from run.json). In
    # process from here on: the subprocess above already covers the console entry point.
    assert cli.main(["train", "mlp-digits", "--epochs", "3", "--out", out, "--resume"]) == 0
    assert "summary" in capsys.readouterr().out
    history = _lines(os.path.join(out, "metrics.jsonl"))
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert history[2]["step"] == 3 * steps_per_epoch
    with open(os.path.join(out, "summary.json")) as f:
        resumed = json.load(f)
    assert resumed["steps"] == 3 * steps_per_epoch

    # zoo eval restores the last checkpoint and reproduces the summary's test metrics.
    assert cli.main(["eval", "mlp-digits", "--checkpoint", out]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["step"] == resumed["steps"]
    assert metrics["test_accuracy"] == pytest.approx(resumed["test_accuracy"], abs=1e-6)
    assert metrics["test_loss"] == pytest.approx(resumed["test_loss"], rel=1e-5)


def test_misspelled_model_exits_2_with_close_match():
    proc = _zoo("train", "cnnn", check=False)
    assert proc.returncode == 2
    assert "Did you mean 'cnn'" in proc.stderr


def test_list_prints_the_registry(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "cnn" in out and "mnist1d" in out and "94%" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "mlp", "--optimizer", "adamm"], "Did you mean 'adam'"),
    (["train", "mlp", "--dataset", "digitz"], "Did you mean 'digits'"),
    (["train", "autoencoder", "--dataset", "mnist1d"], "cannot use dataset 'mnist1d'"),
    (["eval", "mlp", "--checkpoint", "/nonexistent/run"], "no run.json"),
])
def test_bad_values_exit_2_with_a_message(argv, message, capsys, tmp_path):
    if "--checkpoint" not in argv and argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "r"), "--quiet", "--epochs", "0"]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["train", "mlp", "--lr", "-1"],
    ["train", "mlp", "--epochs", "two"],
    ["train", "mlp", "--batch-size", "0"],
    ["eval", "mlp"],                      # --checkpoint is required
    ["fly"],
])
def test_bad_syntax_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_gradients_command_writes_figure_and_table(tmp_path, capsys):
    out = tmp_path / "g"
    assert cli.main(["gradients", "--depth", "3", "--out", str(out)]) == 0
    table = json.loads((out / "gradient_norms.json").read_text())
    assert set(table) == {"sigmoid/notes_other", "sigmoid/normal", "tanh/notes_tanh",
                          "tanh/normal", "relu/notes_relu", "relu/normal"}
    assert all(len(v) == 3 for v in table.values())
    assert (out / "gradient_norms.png").read_bytes()[:4] == b"\x89PNG"
    assert "relu/normal" in capsys.readouterr().out
