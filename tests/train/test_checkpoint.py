"""Tests of train.checkpoint and of fit's checkpoint/resume: kill a run, resume it, and get
bitwise the uninterrupted result; mismatched restores; damaged checkpoints; retention.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.train.test_loop import ROOT, class_data, leaves_equal, mlp_loss, mlp_params
from train import checkpoint as ck
from train import loop

FIT_ARGS = "epochs={epochs}, batch_size=10, fast_path={fp!r}, progress=False"

KILLED_BY_CALLBACK = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    import optax
    from tests.train.test_loop import class_data, mlp_loss, mlp_params
    from train import loop
    def die(epoch, state, logs):
        if epoch == 2:       # after epoch 2's update, before its checkpoint
            os._exit(17)
    loop.fit(mlp_loss, mlp_params(), optax.adam(1e-2), class_data(), key=3,
             checkpoint_dir={ckdir!r}, keep=2, callbacks=[die], {args})
""")

KILLED_FROM_OUTSIDE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import optax
    from tests.train.test_loop import class_data, mlp_loss, mlp_params
    from train import loop
    print("started", flush=True)
    loop.fit(mlp_loss, mlp_params(), optax.adam(1e-2), class_data(), key=3,
             checkpoint_dir={ckdir!r}, keep=2, {args})
""")


def reference(epochs, fp):
    return loop.fit(mlp_loss, mlp_params(), optax.adam(1e-2), class_data(), key=3,
                    epochs=epochs, batch_size=10, fast_path=fp, progress=False)


def resume(ckdir, epochs, fp):
    return loop.fit(mlp_loss, mlp_params(), optax.adam(1e-2), class_data(), key=3,
                    epochs=epochs, batch_size=10, fast_path=fp, progress=False,
                    checkpoint_dir=ckdir, keep=2, resume=True)


def test_killed_runs_resume_bitwise(tmp_path):
    cb_dir, out_dir = str(tmp_path / "cb"), str(tmp_path / "out")
    epochs_out = 25
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    by_callback = subprocess.Popen(
        [sys.executable, "-c", KILLED_BY_CALLBACK.format(
            root=ROOT, ckdir=cb_dir, args=FIT_ARGS.format(epochs=4, fp="scan"))],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    outside = subprocess.Popen(
        [sys.executable, "-c", KILLED_FROM_OUTSIDE.format(
            root=ROOT, ckdir=out_dir, args=FIT_ARGS.format(epochs=epochs_out, fp="loop"))],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    # SIGKILL the second run as soon as its 3rd checkpoint exists: the kill lands wherever
    # the run happens to be (often inside the next epoch or the next save).
    deadline = time.time() + 150
    while time.time() < deadline and outside.poll() is None:
        done = [int(n[5:]) for n in (os.listdir(out_dir) if os.path.isdir(out_dir) else ())
                if re.fullmatch(r"step_\d{10}", n)]   # complete ones, not orbax's temp dirs
        if done and max(done) >= 15:
            outside.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    outside.wait(timeout=60)
    assert outside.returncode == -signal.SIGKILL, outside.stderr.read()[-2000:]
    by_callback.wait(timeout=150)
    assert by_callback.returncode == 17, by_callback.stderr.read()[-2000:]

    # The callback run died before epoch 2's checkpoint: it resumes at epoch 2.
    assert ck.CheckpointManager(cb_dir).steps() == [5, 10]
    res = resume(cb_dir, 4, "scan")
    ref = reference(4, "scan")
    assert leaves_equal(res.state, ref.state)
    assert res.history == ref.history
    assert ck.CheckpointManager(cb_dir).steps() == [15, 20]

    killed_at = ck.CheckpointManager(out_dir).latest_step()
    assert 15 <= killed_at < 5 * epochs_out
    res = resume(out_dir, epochs_out, "loop")
    ref = reference(epochs_out, "loop")
    assert leaves_equal(res.state, ref.state)
    assert res.history == ref.history


def small_state():
    return loop.init_train_state(mlp_params(), optax.adam(1e-2), key=0)


def test_mismatched_restore_names_the_leaf(tmp_path):
    state = small_state()
    ck.save_checkpoint(str(tmp_path / "c"), state, {"note": "x"})
    restored, meta = ck.restore_checkpoint(str(tmp_path / "c"), state)
    assert leaves_equal(restored, state) and meta["note"] == "x"
    assert type(restored) is loop.TrainState
    wrong = small_state()._replace(params={**mlp_params(), "w1": jnp.zeros((8, 17))})
    with pytest.raises(ck.CheckpointMismatchError, match=r"\.params\['w1'\].*\[8, 16\]"):
        ck.restore_checkpoint(str(tmp_path / "c"), wrong)
    missing = {k: v for k, v in mlp_params().items() if k != "b2"}
    with pytest.raises(ck.CheckpointMismatchError, match=r"params\['b2'\]"):
        ck.restore_checkpoint(str(tmp_path / "c"),
                              loop.init_train_state(missing, optax.adam(1e-2), key=0))
    mgr = ck.CheckpointManager(str(tmp_path / "m"))
    mgr.save(1, state)
    with pytest.raises(ValueError, match=r"params\['w1'\]"):   # not silently skipped
        mgr.restore(wrong)


def test_damaged_latest_falls_back_with_warning(tmp_path):
    mgr = ck.CheckpointManager(str(tmp_path), keep=5)
    states = []
    for s in (1, 2, 3):
        st = small_state()._replace(step=jnp.int32(s))
        st = st._replace(params=jax.tree.map(lambda a, s=s: a + s, st.params))
        mgr.save(s, st, {"s": s})
        states.append(st)
    # damage the newest: wipe the array data of its state item
    for root, _, files in os.walk(os.path.join(mgr.path(3), "state")):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage")
    with pytest.warns(RuntimeWarning, match="step_0000000003"):
        restored, meta = mgr.restore(small_state())
    assert meta["s"] == 2 and leaves_equal(restored, states[1])
    with pytest.raises(FileNotFoundError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mgr.restore(small_state(), step=3)


def test_keep_last_n_and_best_and_ignore_temp_dirs(tmp_path):
    mgr = ck.CheckpointManager(str(tmp_path), keep=2, best_metric="val_loss", best_mode="min")
    tiny = {"a": jnp.arange(3.0)}
    for step, v in zip([1, 2, 3, 4, 5], [3.0, 1.0, 2.0, 4.0, 5.0], strict=True):
        mgr.save(step, tiny, {"metrics": {"val_loss": v}})
    assert mgr.steps() == [2, 4, 5] and mgr.best_step() == 2
    os.makedirs(os.path.join(str(tmp_path), "step_0000000009.orbax-checkpoint-tmp-1"))
    assert mgr.steps() == [2, 4, 5]
    # a new manager on the same directory recovers the best from the metadata
    again = ck.CheckpointManager(str(tmp_path), keep=2, best_metric="val_loss")
    assert again.best_step() == 2


def test_nonfinite_state_is_never_checkpointed(tmp_path):
    data = class_data(n=20)

    def batches(epoch):   # epoch 2 brings a NaN input
        x = data["x"].copy()
        if epoch == 2:
            x[0] = np.nan
        yield {"x": x, "y": data["y"]}

    with pytest.warns(RuntimeWarning, match="non-finite state"):
        res = loop.fit(mlp_loss, mlp_params(), optax.sgd(0.1), batches, key=0, epochs=4,
                       nan_policy=None, checkpoint_dir=str(tmp_path), keep=10, progress=False)
    assert not np.isfinite(np.asarray(res.state.params["w1"])).all()
    assert ck.CheckpointManager(str(tmp_path)).steps() == [1, 2]
