"""The ``zoo`` command end to end: files, summary fields, --resume, eval, and bad arguments."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from functional import optim
from train import cli, optimizers
from train.drivers import data, standard
from zoo import registry

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
    # The entry's schedule and weight decay are part of the run's saved options.
    with open(os.path.join(out, "run.json")) as f:
        saved = json.load(f)
    assert (saved["optimizer"], saved["schedule"], saved["weight_decay"]) == ("adamw", "step",
                                                                              0.3)
    assert summary["steps"] == 2 * steps_per_epoch
    # The summary's test metrics are the model's on the test split: above chance by far.
    assert summary["test_accuracy"] > 0.5

    # A resume with another batch size is refused (it would mix two data orders) and leaves
    # the run as it was: its run.json and checkpoints. In process from here on: the
    # subprocess above already covers the console entry point.
    steps_before = sorted(os.listdir(os.path.join(out, "checkpoints")))
    assert cli.main(["train", "mlp-digits", "--epochs", "3", "--batch-size", "32", "--out", out,
                     "--resume"]) == 2
    assert "batch_size: saved 64, now 32" in capsys.readouterr().err
    with open(os.path.join(out, "run.json")) as f:
        assert json.load(f) == saved
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == steps_before
    # --resume continues the same run to 3 epochs (options come back from run.json).
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
    (["train", "mlp", "--optimizer", "adam", "--weight-decay", "0.1"], "has no weight decay"),
    (["train", "gan", "--schedule", "cosine"], "trains with its own driver"),
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
    ["train", "mlp", "--schedule", "linear"],
    ["train", "mlp", "--weight-decay", "-0.1"],
    ["eval", "mlp"],                      # --checkpoint is required
    ["fly"],
])
def test_bad_syntax_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_schedule_and_weight_decay_come_from_the_entry_unless_overridden():
    parse = cli.build_parser().parse_args
    _, opts = cli.resolve(parse(["train", "mlp"]))
    spec = registry.get("mlp")
    assert (opts.optimizer, opts.schedule, opts.weight_decay) == (
        spec.optimizer, spec.schedule, spec.weight_decay)
    assert spec.weight_decay is not None and spec.schedule != "constant"
    # Another optimizer drops the entry's decay (adam has none); the schedule stays.
    _, opts = cli.resolve(parse(["train", "mlp", "--optimizer", "adam"]))
    assert (opts.schedule, opts.weight_decay) == (spec.schedule, None)
    _, opts = cli.resolve(parse(["train", "mlp", "--schedule", "constant", "--weight-decay",
                                  "0"]))
    assert (opts.schedule, opts.weight_decay) == ("constant", 0.0)


def test_make_schedule_constant_cosine_step():
    assert optimizers.make_schedule("constant", 0.1) == 0.1
    cosine = optimizers.make_schedule("cosine", 0.1, 100)
    assert float(cosine(0)) == pytest.approx(0.1)
    assert float(cosine(50)) == pytest.approx(0.05)
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-9)
    step = optimizers.make_schedule("step", 0.1, 100)   # lr / 10 for the last fifth of the steps
    assert [float(step(t)) for t in (0, 79, 80, 99)] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    with pytest.raises(cli.UsageError, match="Did you mean 'cosine'"):
        optimizers.make_schedule("cosin", 0.1, 100)
    with pytest.raises(cli.UsageError, match="total number of steps"):
        optimizers.make_schedule("step", 0.1)
    assert optimizers.steps_per_epoch(4000, 100) == 40
    assert optimizers.steps_per_epoch(1438, 32) == 45
    assert optimizers.steps_per_epoch(10, None) == 1


def test_run_optimizer_applies_schedule_and_weight_decay():
    opts = cli.RunOptions(name="mlp", dataset="mnist1d", dataset_options={}, optimizer="adamw",
                          lr=0.1, batch_size=10, epochs=2, schedule="step", weight_decay=0.5)
    opt = standard.run_optimizer(opts, n_train=50)          # 2 epochs x 5 steps: decay at step 8
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    zero = {"w": jnp.zeros(3)}
    rates = []
    for _ in range(10):
        rates.append(float(optim.current_learning_rate(state)))
        updates, state = opt.update(zero, state, params)
        # Zero gradients: Adam's direction is 0, so the update is the decay -lr * wd * w alone.
        np.testing.assert_allclose(updates["w"], -rates[-1] * 0.5 * params["w"], rtol=1e-6)
    assert rates == pytest.approx([0.1] * 8 + [0.01] * 2)


def test_gradients_command_writes_figure_and_table(tmp_path, capsys):
    out = tmp_path / "g"
    assert cli.main(["gradients", "--depth", "3", "--out", str(out)]) == 0
    table = json.loads((out / "gradient_norms.json").read_text())
    assert set(table) == {"sigmoid/notes_other", "sigmoid/normal", "tanh/notes_tanh",
                          "tanh/normal", "relu/notes_relu", "relu/normal"}
    assert all(len(v) == 3 for v in table.values())
    assert (out / "gradient_norms.png").read_bytes()[:4] == b"\x89PNG"
    assert "relu/normal" in capsys.readouterr().out


def test_data_options_reach_the_loader_and_bad_ones_exit_2(capsys):
    args = cli.build_parser().parse_args(
        ["train", "gan", "--data-option", "n_train=300", "--data-option", "std=0.1",
         "--data-option", "path=some file.txt"])
    _, opts = cli.resolve(args)
    # JSON values keep their types; anything else stays text; registry options are kept.
    assert opts.dataset_options == {"n_train": 300, "std": 0.1, "path": "some file.txt"}
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "gan", "--data-option", "no equals sign"])
    assert e.value.code == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_gan_sample_command_writes_a_grid(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "gan", "--epochs", "1", "--batch-size", "128", "--quiet",
                     "--data-option", "n_train=256", "--data-option", "n_test=128",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"test_loss", "modes_covered", "high_quality"} <= set(summary)
    png = tmp_path / "grid.png"
    assert cli.main(["sample", "gan", "--checkpoint", str(out), "-n", "10",
                     "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote 10 samples" in capsys.readouterr().out


@pytest.mark.parametrize("name,dataset,message", [
    ("mlp", "dates", "needs one integer class label per example"),
    ("perceptron", "digits", "perceptron reads feature vectors"),
    ("logistic", "word_corpus", "needs one integer class label per example"),
    ("mlp-regression", "mnist1d", "needs real-valued targets"),
    ("logistic-binary", "mnist1d", "outputs one binary decision per example but the dataset "
                                   "has 10 classes"),
    ("reber-lstm", "copy", "reber.loss: expected y of shape"),       # found by the trace
    ("seq2seq", "mnist1d", "needs a parallel corpus"),               # own train function
    ("gan", "tv_script", "gan reads 2-D points"),
])
def test_a_dataset_the_model_cannot_use_is_one_error_line(name, dataset, message, tmp_path,
                                                          capsys):
    out = tmp_path / "r"
    assert cli.main(["train", name, "--dataset", dataset, "--epochs", "1", "--quiet",
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo: error: model {name!r} cannot use dataset {dataset!r}: ")
    assert message in err and err.count("\n") == 1
    assert not out.exists()        # refused before anything was built or written


def test_a_text_file_is_no_data_for_a_classifier(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 20)
    assert cli.main(["train", "mlp", "--dataset", "text", "--data-option", f"path={text}",
                     "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot use dataset 'text'" in err and "task 'text'" in err


def test_every_entry_accepts_its_default_dataset():
    for spec in registry.specs():
        # an entry for real data uses its stand-in here (the test cache has no files)
        name, options, _ = data.choose_dataset(spec, spec.dataset_options)
        ds = data.load_data(name, options)
        data.check_data(spec, name, ds)
    # the standard trainer also traces the loss: one entry per model module and task
    for name in ("perceptron", "linear", "logistic", "logistic-binary", "mlp-regression",
                 "gru-mnist1d", "adding-rnn", "reber-rnn"):
        spec = registry.get(name)
        opts = cli.RunOptions(name=name, dataset=spec.dataset,
                              dataset_options=spec.dataset_options, optimizer=spec.optimizer,
                              lr=spec.lr, batch_size=spec.batch_size, epochs=1)
        standard.prepare(spec, opts)


def test_unknown_data_option_names_the_dataset_and_its_options(tmp_path, capsys):
    assert cli.main(["train", "perceptron", "--data-option", "foo=1", "--out",
                     str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "dataset 'and' has no option 'foo'" in err and "options: validation" in err
    assert "locals" not in err and err.count("\n") == 1


def test_damaged_checkpoint_is_one_error_line_naming_the_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "perceptron", "--epochs", "2", "--quiet", "--out", str(out)]) == 0
    emptied = 0
    for step in (out / "checkpoints").glob("step_*"):
        for f in (step / "state").rglob("*"):
            if f.is_file():
                f.write_bytes(b"")
                emptied += 1
    assert emptied
    capsys.readouterr()
    assert cli.main(["eval", "perceptron", "--checkpoint", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo: error: no readable checkpoint in "
                          f"{str(out / 'checkpoints')!r}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_out_that_is_a_file_or_cannot_be_created_is_an_error(tmp_path, capsys):
    a_file = tmp_path / "summary.json"
    a_file.write_text("{}")
    for out, message in ((a_file, "is an existing file, not a directory"),
                         (a_file / "sub", "cannot write the run directory")):
        assert cli.main(["train", "perceptron", "--epochs", "1", "--quiet", "--out",
                         str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zoo: error: ") and message in err and str(out) in err
        assert err.count("\n") == 1
    assert a_file.read_text() == "{}"


def test_transfer_writes_the_run_files_of_every_model_and_resumes(tmp_path, capsys,
                                                                 monkeypatch):
    import dataclasses

    spec = registry.get("transfer")
    small = dataclasses.replace(spec, extra={**spec.extra, "finetune_epochs": 3})
    monkeypatch.setitem(registry._REGISTRY, "transfer", small)
    out = tmp_path / "run"
    argv = ["train", "transfer", "--batch-size", "64", "--data-option", "test_fraction=0.8",
            "--quiet", "--out", str(out)]
    assert cli.main([*argv, "--epochs", "1"]) == 0
    for name in ("summary.json", "metrics.jsonl", "loss.png", "manifest.json", "run.json",
                 "transfer.json"):
        assert (out / name).is_file(), name
    assert any(d.name.startswith("step_") for d in (out / "checkpoints").iterdir())
    summary = json.loads((out / "summary.json").read_text())
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "epochs", "steps",
                "param_count", "seconds"):
        assert key in summary, key
    history = _lines(out / "metrics.jsonl")
    assert [row["epoch"] for row in history] == [0] and "val_accuracy" in history[0]
    steps_per_epoch = history[0]["step"]
    # --resume continues the pretraining from its checkpoint to --epochs in total
    assert cli.main([*argv, "--epochs", "2", "--resume"]) == 0
    history = _lines(out / "metrics.jsonl")
    assert [row["epoch"] for row in history] == [0, 1]
    assert history[1]["step"] == 2 * steps_per_epoch
    resumed = json.loads((out / "summary.json").read_text())
    assert (resumed["epochs"], resumed["steps"]) == (2, 2 * steps_per_epoch)


def test_precision_is_chosen_recorded_and_resumed(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "logistic-binary", "--epochs", "2", "--precision", "highest",
                     "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["precision"] == "highest"
    manifest = json.loads((out / "checkpoints" / "manifest.json").read_text())
    assert manifest["config"]["precision"] == "highest"   # what fit computed at
    summary = json.loads((out / "manifest.json").read_text())
    assert summary["extra"]["options"]["precision"] == "highest"
    # a resume keeps the run's precision unless told otherwise
    args = cli.build_parser().parse_args(["train", "logistic-binary", "--resume", "--out",
                                          str(out)])
    _, opts = cli.resolve(args, saved=json.loads((out / "run.json").read_text()))
    assert opts.precision == "highest"
    with pytest.raises(SystemExit):
        cli.main(["train", "logistic-binary", "--precision", "tf32"])
