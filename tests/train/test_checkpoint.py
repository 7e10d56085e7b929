"""Tests of train.checkpoint and of fit's checkpoint/resume: kill a run, resume it, and get
bitwise the uninterrupted result; mismatched restores; damaged checkpoints; retention.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.precision import children_env
from tests.train.test_loop import ADAM, ROOT, class_data, leaves_equal, mlp_loss, mlp_params
from train import checkpoint as ck
from train import loop

PRELUDE = """
import os, sys
sys.path.insert(0, {root!r})
import numpy as np
from tests.train.test_loop import ADAM, class_data, mlp_loss, mlp_params
from tests.train.test_checkpoint import stream
from train import loop
"""

# fit writes checkpoints in the background, and a process that dies while one is being
# written keeps only the ones before it (KILLED_FROM_OUTSIDE lands anywhere, mid-write
# included). The two kills at chosen points wait for each write, to die after it.
WRITES_WAITED = """
from train import checkpoint as ck
_save = ck.CheckpointManager.save
def save_and_wait(self, *args, **kwargs):
    path = _save(self, *args, **kwargs)
    self.wait()
    return path
ck.CheckpointManager.save = save_and_wait
"""

# os._exit from a callback at the end of epoch 2, after its mid-epoch checkpoints (every 2
# steps) but before its epoch-end checkpoint: resumes at epoch 2, batch 4, in a chunked scan.
KILLED_BY_CALLBACK = PRELUDE + WRITES_WAITED + """
def die(epoch, state, logs):
    if epoch == 2:
        os._exit(17)
loop.fit(mlp_loss, mlp_params(), ADAM, class_data(), key=3, epochs=4,
         batch_size=10, fast_path="scan", progress=False, checkpoint_dir={ckdir!r}, keep=2,
         checkpoint_every=2, callbacks=[die])
"""

# SIGKILLed by the test once its checkpoint of step 15 exists: lands anywhere.
KILLED_FROM_OUTSIDE = PRELUDE + """
loop.fit(mlp_loss, mlp_params(), ADAM, class_data(), key=3, epochs={epochs},
         batch_size=10, fast_path="loop", progress=False, checkpoint_dir={ckdir!r}, keep=2,
         checkpoint_every=3)
"""

# Streamed data whose generator dies inside epoch 1 (batch 3, after the batch-2 checkpoint).
KILLED_IN_STREAM = PRELUDE + WRITES_WAITED + """
def dying(epoch):
    for b, batch in enumerate(stream(epoch)):
        if (epoch, b) == (1, 3):
            os._exit(19)
        yield batch
loop.fit(mlp_loss, mlp_params(), ADAM, dying, key=3, epochs=3, progress=False,
         checkpoint_dir={ckdir!r}, keep=2, checkpoint_every=2)
"""


def stream(epoch):
    """Five batches of 10 in an order drawn from the epoch (repeatable)."""
    data = class_data()
    order = np.random.default_rng(epoch).permutation(50)
    for s in range(0, 50, 10):
        yield {k: v[order[s:s + 10]] for k, v in data.items()}


def run_fit(data, epochs, fp="loop", **kw):
    return loop.fit(mlp_loss, mlp_params(), ADAM, data, key=3, epochs=epochs,
                    batch_size=None if callable(data) else 10, fast_path=fp, progress=False,
                    **kw)


# Resumes each killed run and runs it uninterrupted; writes both states and histories.
RESUME_AND_REFERENCE = PRELUDE + """
import json
import jax
from tests.train.test_checkpoint import run_fit
from train import checkpoint as ck
dirs, epochs_out, out = {dirs!r}, {epochs!r}, {out!r}
cases = {{"cb": (class_data(), 4, "scan", dict(checkpoint_every=2)),
         "out": (class_data(), epochs_out, "loop", dict(checkpoint_every=3)),
         "stream": (stream, 3, "loop", dict(checkpoint_every=2))}}
report = {{"backend": jax.default_backend()}}
for name, (data, epochs, fp, kw) in cases.items():
    before = ck.CheckpointManager(dirs[name]).steps()
    res = run_fit(data, epochs, fp, checkpoint_dir=dirs[name], keep=2, resume=True, **kw)
    ref = run_fit(data, epochs, fp)
    for tag, r in (("res", res), ("ref", ref)):
        np.savez(os.path.join(out, f"{{name}}_{{tag}}.npz"),
                 *[np.asarray(x) for x in jax.tree.leaves(r.state)])
    report[name] = {{"before": before, "after": ck.CheckpointManager(dirs[name]).steps(),
                    "res": res.history, "ref": ref.history}}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f)
"""


def test_killed_runs_resume_bitwise(tmp_path):
    dirs = {k: str(tmp_path / k) for k in ("cb", "out", "stream")}
    epochs_out = 12
    env, children_backend = children_env()
    codes = {"cb": KILLED_BY_CALLBACK.format(root=ROOT, ckdir=dirs["cb"]),
             "out": KILLED_FROM_OUTSIDE.format(root=ROOT, ckdir=dirs["out"], epochs=epochs_out),
             "stream": KILLED_IN_STREAM.format(root=ROOT, ckdir=dirs["stream"])}
    procs = {k: subprocess.Popen([sys.executable, "-c", c], cwd=ROOT, env=env,
                                 stderr=subprocess.PIPE, text=True) for k, c in codes.items()}
    outside, out_dir = procs["out"], dirs["out"]
    deadline = time.time() + 150
    while time.time() < deadline and outside.poll() is None:
        done = [int(n[5:]) for n in (os.listdir(out_dir) if os.path.isdir(out_dir) else ())
                if re.fullmatch(r"step_\d{10}", n)]   # complete ones, not orbax's temp dirs
        if done and max(done) >= 15:
            outside.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    codes = {k: p.wait(timeout=150) for k, p in procs.items()}
    errors = {k: p.stderr.read()[-2000:] for k, p in procs.items()}
    assert codes == {"cb": 17, "out": -signal.SIGKILL, "stream": 19}, errors

    # callback: the last checkpoints are epoch 2's mid-epoch ones (steps 12 and 14)
    mgr = ck.CheckpointManager(dirs["cb"])
    assert mgr.steps() == [12, 14]
    assert {k: ck.read_meta(mgr.path(14))[k] for k in ("next_epoch", "next_batch")} == \
        {"next_epoch": 2, "next_batch": 4}
    # SIGKILL: wherever it landed, the latest complete checkpoint continues exactly
    killed_at = ck.CheckpointManager(out_dir).latest_step()
    assert 15 <= killed_at < 5 * epochs_out
    # streamed data: resumed at epoch 1, batch 2, skipping the batches already used
    mgr = ck.CheckpointManager(dirs["stream"])
    assert ck.read_meta(mgr.path(mgr.latest_step()))["next_batch"] == 2

    # each resumed in a child on the same backend, beside the uninterrupted run: the callback
    # one in chunked scans (resumed at epoch 2, batch 4) against whole-epoch scans
    out = tmp_path / "results"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", RESUME_AND_REFERENCE.format(
        root=ROOT, dirs=dirs, epochs=epochs_out, out=str(out))], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["backend"] == children_backend
    for name in ("cb", "out", "stream"):
        res, ref = (np.load(out / f"{name}_{tag}.npz") for tag in ("res", "ref"))
        assert len(res.files) == len(ref.files) > 0
        for k in ref.files:
            np.testing.assert_array_equal(res[k], ref[k], err_msg=f"{name}: leaf {k}")
        assert report[name]["res"] == report[name]["ref"], name
    assert report["cb"]["after"] == [19, 20]


def small_state():
    return loop.init_train_state(mlp_params(), ADAM, key=0)


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
                              loop.init_train_state(missing, ADAM, key=0))
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


def test_asynchronous_manager_prunes_only_after_the_newer_write_and_restores_it(tmp_path):
    mgr = ck.CheckpointManager(str(tmp_path), keep=1, asynchronous=True)
    state = {"w": jnp.arange(6.0).reshape(2, 3), "n": jnp.int32(7)}
    mgr.save(1, state, {"note": 1})
    mgr.save(2, jax.tree.map(lambda x: x + 1, state), {"note": 2})   # waits for step 1
    assert 1 in mgr.steps()        # kept while step 2 may still be being written
    mgr.wait()
    assert mgr.steps() == [2]      # pruned once step 2 is complete
    mgr.save(3, jax.tree.map(lambda x: x + 2, state), {"note": 3})
    restored, meta = mgr.restore(state)   # waits for the write in flight
    assert meta["note"] == 3 and mgr.steps() == [3]
    for k in state:                # the exact values, checksums verified on restore
        np.testing.assert_array_equal(np.asarray(restored[k]), np.asarray(state[k]) + 2)


def test_asynchronous_save_keeps_the_values_of_save_time_when_the_buffers_are_donated(tmp_path):
    """fit donates the state to its next epoch right after a save: the background write must
    not read those buffers (orbax copies them to the host before save returns)."""
    mgr = ck.CheckpointManager(str(tmp_path), asynchronous=True)
    state = {"w": jnp.full((64, 64), 3.0)}
    mgr.save(1, state, {})
    bump = jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s), donate_argnums=0)
    state = bump(state)            # frees the saved buffers (on backends that donate)
    mgr.wait()
    restored, _ = mgr.restore({"w": jnp.zeros((64, 64))})
    np.testing.assert_array_equal(np.asarray(restored["w"]), 3.0)


def test_nonfinite_state_is_never_checkpointed(tmp_path):
    data = class_data(n=20)

    def batches(epoch):   # epoch 2 brings a NaN input
        x = data["x"].copy()
        if epoch == 2:
            x[0] = np.nan
        yield {"x": x, "y": data["y"]}

    with pytest.warns(RuntimeWarning, match="non-finite; not checkpointed"):
        res = loop.fit(mlp_loss, mlp_params(), optax.sgd(0.1), batches, key=0, epochs=4,
                       nan_policy=None, checkpoint_dir=str(tmp_path), keep=10, progress=False)
    assert not np.isfinite(np.asarray(res.state.params["w1"])).all()
    assert ck.CheckpointManager(str(tmp_path)).steps() == [1, 2]


def test_resuming_an_early_stopped_run_does_not_train_further(tmp_path):
    from tests.train.test_loop import linear_data, linear_loss

    data, params = linear_data()
    val = {"x": data["x"], "y": -data["y"]}   # validation loss rises: stops early
    kw = dict(key=0, epochs=20, eval_data=val, early_stopping=("val_loss", 1), progress=False,
              checkpoint_dir=str(tmp_path), keep_best="val_loss")
    sgd = optax.sgd(0.1)
    first = loop.fit(linear_loss, params, sgd, data, **kw)
    assert len(first.history) < 20
    again = loop.fit(linear_loss, params, sgd, data, resume=True, **kw)
    assert again.history == first.history and leaves_equal(again.state, first.state)
    # the best checkpoint (lowest val_loss, the first epoch here) is kept beside the last
    mgr = ck.CheckpointManager(str(tmp_path), best_metric="val_loss")
    assert mgr.best_step() == 1 and mgr.steps()[0] == 1
