"""Nothing lost, nothing silent: checkpoints that check themselves, resumes that continue the
same run only, one writer per run folder, and one error line for every expected failure of the
``zoo`` command (through ``main()`` and through ``python -m train.cli``).

One small run (``logistic`` on 200 MNIST-1D examples, 2 epochs: two checkpoints whose weights
are stored in an OCDBT data file rather than inline) is trained once per module and copied
into each test that needs a run folder.
"""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import checkpoint as ck
from train import cli, runs

try:
    from train import console, lock
except ImportError:   # the code before this issue: these tests must fail there, not vanish
    console = lock = None
LOCK_FILE = "run.lock"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = 'args={"num_samples": 200}'
OTHER_DATA = 'args={"num_samples": 200, "seed": 43}'   # same shapes, other examples
# a constant schedule: a resume to more epochs stretches no schedule (which would warn)
RUN = ["train", "logistic", "--data-option", DATA, "--schedule", "constant", "--quiet"]


def _zoo(*args, cwd=ROOT):
    """``python -m train.cli ARGS`` in a subprocess: (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "train.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def _one_error_line(err: str, *phrases: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("zoo: error: "), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, err)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("trained") / "run")
    assert cli.main([*RUN, "--epochs", "2", "--out", out]) == 0
    assert ck.CheckpointManager(os.path.join(out, "checkpoints")).steps() == [2, 4]
    return out


@pytest.fixture
def run_dir(trained, tmp_path, capsys):
    out = str(tmp_path / "run")
    shutil.copytree(trained, out)
    capsys.readouterr()
    return out


def _snapshot(out):
    """Every file of a run folder with its bytes (to show that a refusal changed nothing)."""
    found = {}
    for root, _, files in os.walk(out):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, out)] = f.read()
    return found


# --------------------------------------------------------------------------------------------
# 1. Checkpoints carry their own checksums


def _random_state():
    """A state with a 16 KiB array of random floats: its bytes are stored as they are (zstd
    cannot shrink them), so damage to its data file changes values instead of failing to
    decode."""
    rng = np.random.default_rng(0)
    return {"w": jnp.asarray(rng.standard_normal((64, 64)), jnp.float32),
            "b": jnp.asarray(rng.standard_normal(64), jnp.float32), "step": jnp.int32(0)}


def _largest_data_file(step_dir):
    files = [os.path.join(root, f) for root, _, names in
             os.walk(os.path.join(step_dir, "state")) for f in names if "/d" in root]
    return max(files, key=os.path.getsize)


def _overwrite(path, at, data):
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def _flip_bit(path, at, bit=4):
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ (1 << bit)]))


def _damage(kind, step_dir):
    data = _largest_data_file(step_dir)
    size = os.path.getsize(data)
    if kind == "64 bytes in the middle of the data file":
        _overwrite(data, size // 2, b"\xab" * 64)
    elif kind == "64 bytes at three quarters of the data file":
        _overwrite(data, 3 * size // 4, b"\x00" * 64)
    elif kind == "one bit in the middle of the data file":
        _flip_bit(data, size // 2)
    elif kind == "one bit at a quarter of the data file":
        _flip_bit(data, size // 4, bit=6)
    elif kind == "a value of the meta item (still valid JSON)":
        path = os.path.join(step_dir, "meta", "metadata")
        with open(path) as f:
            text = f.read()
        assert '"s": 2' in text
        with open(path, "w") as f:
            f.write(text.replace('"s": 2', '"s": 7'))
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "64 bytes in the middle of the data file",
    "64 bytes at three quarters of the data file",
    "one bit in the middle of the data file",
    "one bit at a quarter of the data file",
    "a value of the meta item (still valid JSON)",
])
def test_damaged_checkpoint_falls_back_to_the_intact_one_with_one_warning(kind, tmp_path):
    mgr = ck.CheckpointManager(str(tmp_path), keep=3)
    states = []
    for s in (1, 2):
        state = jax.tree.map(lambda a, s=s: a + s, _random_state())
        mgr.save(s, state, {"s": s})
        states.append(state)
    _damage(kind, mgr.path(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored, meta = mgr.restore(_random_state())
    # the intact older checkpoint, not the damaged values
    assert meta["s"] == 1
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(states[0]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "\n" not in messages[0], messages
    assert "step_0000000002" in messages[0] and "falling back" in messages[0]
    # restoring that step alone is an error, never the damaged values
    with pytest.raises((ck.CheckpointDamagedError, FileNotFoundError)), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mgr.restore(_random_state(), step=2)


def test_checksum_names_the_damaged_leaf(tmp_path):
    path = str(tmp_path / "c")
    ck.save_checkpoint(path, _random_state())
    _overwrite(_largest_data_file(path), os.path.getsize(_largest_data_file(path)) // 2,
               b"\xab" * 64)
    with pytest.raises(ck.CheckpointDamagedError, match=r"leaf \['w'\] <float32>\[64, 64\]"):
        ck.restore_checkpoint(path, _random_state())


def _silent_damage(run_dir, step_dir) -> None:
    """Overwrite 16 bytes of the checkpoint's largest data file at the first place (from its
    middle on) where TensorStore still reads it without complaint but the values change: the
    damage the issue met, which only the checksums catch."""
    from train.drivers import standard
    from train.loop import init_train_state
    from zoo import registry

    spec = registry.get("logistic")
    opts = runs.RunOptions.from_json(runs.read_run_json(run_dir))
    ds, _, params, model_state, k_fit = standard.prepare(spec, opts)
    target = init_train_state(params, standard.run_optimizer(opts, len(ds.x_train)),
                              key=jax.random.split(k_fit)[0], model_state=model_state)
    data = _largest_data_file(step_dir)
    with open(data, "rb") as f:
        intact = f.read()
    for at in range(len(intact) // 2, len(intact) - 16, 24):
        _overwrite(data, at, b"\xab" * 16)
        try:
            ck.restore_checkpoint(step_dir, target)
        except ck.CheckpointDamagedError:
            return
        except Exception:   # TensorStore noticed: try the next place
            pass
        _overwrite(data, 0, intact)
    raise AssertionError(f"no silent damage found in {data}")


def test_eval_and_resume_skip_a_damaged_newest_checkpoint(run_dir, capsys):
    ckpts = os.path.join(run_dir, "checkpoints")
    _silent_damage(run_dir, os.path.join(ckpts, "step_0000000004"))
    capsys.readouterr()
    assert cli.main(["eval", "logistic", "--checkpoint", run_dir]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["step"] == 2          # the intact one, not step 4
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: warning: ") and "step_0000000004" in \
        lines[0] and "does not match its checksum" in lines[0], captured.err
    # --resume continues from step 2 (and says so) and ends at 3 epochs
    assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "zoo: warning: " in err and "step_0000000004" in err and "Traceback" not in err
    history = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert [h["epoch"] for h in history] == [0, 1, 2]


@pytest.mark.parametrize("when", ["starting", "in the background"])
def test_a_full_disk_is_one_line_and_keeps_the_saved_checkpoints(when, run_dir, capsys,
                                                                 monkeypatch):
    """fit's checkpoints are written in the background: a full disk can stop a save as it
    starts, or its background write, which the next save (or the end of fit) meets."""
    import orbax.checkpoint as ocp

    real_save = ocp.AsyncCheckpointer.save
    real_wait = ocp.AsyncCheckpointer.wait_until_finished
    failed = []

    def enospc(path):
        os.makedirs(f"{path}.orbax-checkpoint-tmp-1/state", exist_ok=True)   # orbax's leftovers
        logging.getLogger("absl").error("[thread=array_type_handler] _SignalingThread.run() "
                                        "raised an exception: RESOURCE_EXHAUSTED")
        return ValueError(f"RESOURCE_EXHAUSTED: Error writing \"params.w/0.0\" in OCDBT "
                          f"database at local file \"{path}\": Failed to write 57346 bytes to "
                          "file 17: No space left on device [os_error_code='28']\n  {'driver': "
                          "...}")

    def save(self, path, *args, **kwargs):
        if "step_0000000006" not in str(path):
            return real_save(self, path, *args, **kwargs)
        if when == "starting":
            raise enospc(path)
        failed.append(path)   # nothing written; the wait reports the failure

    def wait(self):
        real_wait(self)
        if failed:
            raise enospc(failed.pop())

    monkeypatch.setattr(ocp.AsyncCheckpointer, "save", save)
    monkeypatch.setattr(ocp.AsyncCheckpointer, "wait_until_finished", wait)
    assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume"]) == 2
    _one_error_line(capsys.readouterr().err, "No space left on device", "step_0000000006")
    ckpts = os.path.join(run_dir, "checkpoints")
    assert sorted(os.listdir(ckpts)) == ["manifest.json", "step_0000000002",
                                         "step_0000000004"]   # kept; the partial one removed
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))


# --------------------------------------------------------------------------------------------
# 2. A resume continues the same run, or is refused


def test_resume_refuses_other_data_of_the_same_shape(run_dir, capsys):
    before = _snapshot(run_dir)
    assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume",
                     "--data-option", OTHER_DATA]) == 2
    _one_error_line(capsys.readouterr().err, "--resume would not continue the run",
                    "data x_train: other values (same <float32>[", "--allow-changes")
    assert _snapshot(run_dir) == before


@pytest.mark.parametrize("change,named", [
    (["--lr", "0.5"], "lr: saved 0.01, now 0.5"),
    (["--schedule", "cosine"], "schedule: saved 'constant', now 'cosine'"),
    (["--optimizer", "adamw", "--weight-decay", "0.1"], "weight_decay: saved None, now 0.1"),
    (["--seed", "1"], "seed: saved 0, now 1"),
])
def test_resume_refuses_changed_options(change, named, run_dir, capsys):
    before = _snapshot(run_dir)
    assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume", *change]) == 2
    _one_error_line(capsys.readouterr().err, named)
    assert _snapshot(run_dir) == before


def test_allow_changes_resumes_and_records_the_changes(run_dir, capsys):
    assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume", "--lr", "0.02",
                     "--allow-changes"]) == 0
    assert "zoo: warning: --allow-changes: resuming" in capsys.readouterr().err
    with open(os.path.join(run_dir, runs.FINGERPRINT_FILE)) as f:
        fp = json.load(f)
    assert fp["options"]["lr"] == 0.02
    assert fp["changes"][0]["changes"] == ["lr: saved 0.01, now 0.02"]
    with open(os.path.join(run_dir, "manifest.json")) as f:
        assert json.load(f)["extra"]["fingerprint"]["changes"] == fp["changes"]
    # the run is the changed one now: going back to the old rate is a change in turn
    assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume", "--lr", "0.01"]) == 2
    _one_error_line(capsys.readouterr().err, "lr: saved 0.02, now 0.01")


def test_resume_without_a_run_is_an_error(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert cli.main([*RUN, "--out", str(missing), "--resume"]) == 2
    _one_error_line(capsys.readouterr().err, "no run to resume", str(missing))
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main([*RUN, "--out", str(empty), "--resume"]) == 2
    _one_error_line(capsys.readouterr().err, "no run to resume")
    assert list(empty.iterdir()) == []
    with pytest.raises(cli.UsageError, match="no run to resume"):   # the library refuses too
        runs.prepare_run_dir(runs.RunOptions("logistic", "mnist1d", {}, "adam", 0.1, None, 1,
                                             out=str(missing), resume=True))


def test_data_fingerprint_tells_values_order_shape_and_samples_big_arrays(monkeypatch):
    x = np.arange(4000, dtype=np.float32).reshape(100, 40)
    base = runs._array_fingerprint(x)
    assert runs._array_fingerprint(x.copy()) == base
    changed = x.copy()
    changed[50, 3] += 1
    assert runs._array_fingerprint(changed)["sha256"] != base["sha256"]
    assert runs._array_fingerprint(x[::-1])["sha256"] != base["sha256"]
    assert runs._array_fingerprint(x.reshape(200, 20))["shape"] != base["shape"]
    # above FULL_HASH_BYTES: a strided sample of rows plus the sum of all bytes
    monkeypatch.setattr(runs, "FULL_HASH_BYTES", 1024)
    monkeypatch.setattr(runs, "SAMPLE_BYTES", 800)
    sampled = runs._array_fingerprint(x)
    assert sampled["sampled_rows"] == 5
    unsampled = x.copy()
    unsampled[1, 0] += 1          # row 1 is not among the sampled rows: the byte sum tells
    assert runs._array_fingerprint(unsampled) != sampled


# --------------------------------------------------------------------------------------------
# 3. One writer per run folder

HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from train.lock import RunLock
RunLock({out!r}).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(run_dir, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=ROOT, out=run_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _snapshot(run_dir)
        assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume"]) == 2
        _one_error_line(capsys.readouterr().err, "is in use", f"pid {holder.pid}",
                        socket.gethostname())
        assert cli.main([*RUN, "--epochs", "1", "--out", run_dir]) == 2   # nor a fresh run
        _one_error_line(capsys.readouterr().err, "is in use")
        assert _snapshot(run_dir) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # killed without releasing it: the lock file stays, naming a dead process (a resume to
    # the epochs done: no training, only the run's files written again)
    assert lock.holder_of(run_dir)["pid"] == holder.pid
    assert cli.main([*RUN, "--epochs", "2", "--out", run_dir, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"zoo: warning: taking over the stale lock of {run_dir!r}: pid {holder.pid}" in err
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))   # released


def test_a_lock_file_naming_a_live_or_dead_process(tmp_path):
    out = str(tmp_path)
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:   # a live process that does not hold the flock (a file system without locks)
        with open(os.path.join(out, LOCK_FILE), "w") as f:
            json.dump({"pid": sleeper.pid, "host": host}, f)
        with pytest.raises(lock.RunLockedError, match=f"pid {sleeper.pid}"):
            lock.RunLock(out).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.warns(RuntimeWarning, match=f"stale lock .* pid {sleeper.pid} .* is gone"):
        with lock.RunLock(out) as held:
            assert lock.holder_of(out)["pid"] == os.getpid() and held.held
            with pytest.raises(lock.RunLockedError, match=f"pid {os.getpid()}"):
                lock.RunLock(out).acquire()      # a second writer, even in this process
    assert not os.path.exists(os.path.join(out, LOCK_FILE))
    with open(os.path.join(out, LOCK_FILE), "w") as f:
        json.dump({"pid": 1, "host": host + "-elsewhere"}, f)
    with pytest.raises(lock.RunLockedError, match="cannot check; if that run has ended"):
        lock.RunLock(out).acquire()


def test_the_lock_is_released_after_a_failed_run(run_dir, capsys):
    assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume", "--lr", "9"]) == 2
    capsys.readouterr()
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))
    with runs.writing(run_dir):     # held by this process: the CLI is refused, in process too
        assert cli.main([*RUN, "--epochs", "3", "--out", run_dir, "--resume"]) == 2
        _one_error_line(capsys.readouterr().err, "is in use")
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))


# --------------------------------------------------------------------------------------------
# 4 and 5. One error line (exit 2) for every expected failure


def test_a_diverging_run_is_one_error_line_and_exit_2(tmp_path, capsys):
    # full-batch gradient descent at 1e30 on a linear unit: the second step's loss overflows
    out = tmp_path / "r"
    assert cli.main(["train", "linear", "--lr", "1e30", "--epochs", "3", "--quiet", "--out",
                     str(out)]) == 2
    _one_error_line(capsys.readouterr().err, "non-finite value at step",
                    "the first non-finite leaf is")
    assert not (out / LOCK_FILE).exists()


def test_a_run_ending_with_nonfinite_parameters_says_so(tmp_path):
    from train.loop import NonFiniteError

    opts = runs.RunOptions("mlp", "mnist1d", {}, "sgd", 0.1, None, 1, out=str(tmp_path))
    params = {"w": jnp.array([1.0, jnp.nan])}
    with pytest.raises(NonFiniteError, match=r"non-finite parameters \(the first is "
                                             r"params\['w'\]\)"):
        runs.write_run_files(str(tmp_path), opts=opts, summary={"steps": 3}, history=[],
                             cfg={}, params=params)
    assert (tmp_path / "summary.json").is_file()      # the record is kept


# (an empty or non-object run.json was one line already; tests/train/test_cli.py's end-to-end
# test covers a changed batch size, which fit's own check refused already)
DAMAGED_RUN_JSON = [
    ('{"name": "logistic", "lr": "abc"}', "'lr' must be a number > 0, got 'abc'"),
    ('{"name": "logistic", "epochs": "x"}', "'epochs' must be an integer >= 0"),
    ('{"name": "logistic", "seed": 1180591620717411303424}', "'seed' must be an integer in"),
    ('{"name": "logistic", "batch_size": 2.5}', "'batch_size' must be an integer >= 1"),
    ('{"name": "logistic", "dataset_options": [1]}', "'dataset_options' must be an object"),
]


@pytest.mark.parametrize("text,message", DAMAGED_RUN_JSON)
def test_a_damaged_run_json_is_one_error_line(text, message, run_dir, capsys):
    with open(os.path.join(run_dir, runs.RUN_FILE), "w") as f:
        f.write(text)
    for argv in (["eval", "logistic", "--checkpoint", run_dir],
                 [*RUN, "--epochs", "3", "--out", run_dir, "--resume"]):
        assert cli.main(argv) == 2
        _one_error_line(capsys.readouterr().err, "run.json", message)


def _bad_argvs(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return [
        (["train", "perceptron", "--seed", str(2 ** 70)], "--seed: expected an integer in"),
        (["train", "perceptron", "--out", ""], "--out: expected a path, got an empty one"),
        (["gradients", "--depth", "2", "--out", str(a_file / "x")], "Not a directory"),
        (["translate", "--checkpoint", str(tmp_path), "--alpha", "nan", "hi"],
         "--alpha: expected a number >= 0, got 'nan'"),
        (["train", "perceptron", "--dataset", "digits", "--out", str(tmp_path / "r")],
         "perceptron reads feature vectors"),              # raised by a driver module
        (["train", "perceptron", "--allow-changes", "--out", str(tmp_path / "r")],
         "--allow-changes applies to --resume only"),
    ]


def test_bad_input_is_one_error_line_through_main(tmp_path, capsys):
    for argv, message in _bad_argvs(tmp_path):
        try:
            status = cli.main(argv)
        except SystemExit as e:     # argparse's errors
            status = e.code
        assert status == 2, argv
        _one_error_line(capsys.readouterr().err, message)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("case", [0, 2, 4])
def test_bad_input_is_one_error_line_through_python_m(case, tmp_path):
    argv, message = _bad_argvs(tmp_path)[case]
    status, _, err = _zoo(*argv, cwd=str(tmp_path))
    assert status == 2
    _one_error_line(err, message)


def test_python_m_eval_of_a_damaged_checkpoint_prints_one_warning_line(run_dir):
    # damage that TensorStore notices itself (the root manifest): orbax's callbacks then
    # fired into a closed event loop and printed about 190 lines of tracebacks now and then
    newest = os.path.join(run_dir, "checkpoints", "step_0000000004")
    _overwrite(os.path.join(newest, "state", "manifest.ocdbt"), 20, b"\xab" * 64)
    status, out, err = _zoo("eval", "logistic", "--checkpoint", run_dir)
    assert status == 0 and json.loads(out)["step"] == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: warning: "), err


def test_event_loop_noise_is_dropped_and_other_unraisables_are_not(capsys):
    cli.main(["list"])
    capsys.readouterr()

    class Unraisable:
        exc_type, exc_traceback, err_msg, object = RuntimeError, None, None, None

        def __init__(self, e):
            self.exc_value = e

    seen = []
    previous = console._PREVIOUS_UNRAISABLEHOOK
    console._PREVIOUS_UNRAISABLEHOOK = seen.append
    try:
        sys.unraisablehook(Unraisable(RuntimeError("Event loop is closed")))
        sys.unraisablehook(Unraisable(RuntimeError("something else")))
    finally:
        console._PREVIOUS_UNRAISABLEHOOK = previous
    assert [str(u.exc_value) for u in seen] == ["something else"]


def test_unretrieved_failed_write_tasks_are_dropped_and_other_task_errors_are_not(capsys):
    """After a background checkpoint write met a full disk (reported in one line), asyncio
    reports each of orbax's unretrieved write tasks with a traceback as they are collected."""
    cli.main(["list"])
    capsys.readouterr()
    seen = []

    class Seen(logging.Handler):
        def emit(self, record):
            seen.append(record.exc_info[1])

    asyncio_log, handler = logging.getLogger("asyncio"), Seen()
    asyncio_log.addHandler(handler)
    try:
        for e in (ValueError("RESOURCE_EXHAUSTED: Failed to write 28356 bytes to file 15: No "
                             "space left on device [os_error_code='28']"),
                  ValueError("a bug in a task")):
            try:
                raise e
            except ValueError:
                asyncio_log.error("Task exception was never retrieved\nfuture: <Task ...>",
                                  exc_info=True)
    finally:
        asyncio_log.removeHandler(handler)
    assert [str(e) for e in seen] == ["a bug in a task"]


def test_lock_start_time_tells_a_reused_pid(monkeypatch):
    me = os.getpid()
    assert lock._alive(me, lock._start_time(me))
    assert not lock._alive(me, "1")             # same pid, another start: not the holder
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    time.sleep(0.01)
    assert not lock._alive(child.pid, None)
