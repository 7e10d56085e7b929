"""Multi-process data parallelism: two real JAX processes on loopback (jax.distributed + gloo
CPU collectives), each feeding its share of every global batch, train to the same parameters
as one process, and their checkpoint restores in one process.

This file is also the worker: ``python tests/train/test_distributed.py WORKER_ARGS``.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N, D, H, C = 64, 5, 8, 3
BATCH, EPOCHS, LR, SEED = 16, 3, 1e-2, 0


def _data():
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(N, D)).astype(np.float32),
            "y": rng.integers(0, C, N).astype(np.int32)}


def _model():
    """A tiny tanh MLP written with jax.numpy and optax only (the zoo is not needed)."""
    import jax
    import jax.numpy as jnp
    import optax

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"h": {"w": 0.5 * jax.random.normal(k1, (D, H)), "b": jnp.zeros(H)},
                "o": {"w": 0.5 * jax.random.normal(k2, (H, C)), "b": jnp.zeros(C)}}

    def loss_fn(p, model_state, batch, key):
        h = jnp.tanh(batch["x"] @ p["h"]["w"] + p["h"]["b"])
        logits = h @ p["o"]["w"] + p["o"]["b"]
        per = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        w = batch.get("weight", jnp.ones_like(per))
        acc = jnp.sum((jnp.argmax(logits, -1) == batch["y"]) * w) / jnp.sum(w)
        return jnp.sum(per * w) / jnp.sum(w), (model_state, {"accuracy": acc})

    return init, loss_fn, optax.adam(LR)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat(tree):
    import jax

    return {jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


# ---------------------------------------------------------------------------------------------
# Worker (runs in a subprocess)


def worker(process_id: int, num_processes: int, port: int, out: str, batch_size, full: bool):
    sys.path.insert(0, ROOT)
    from train import distributed as dist

    dist.initialize(f"127.0.0.1:{port}", num_processes, process_id, local_device_count=2)
    import jax

    from train import loop

    init, loss_fn, opt = _model()
    mesh = dist.data_mesh()
    params = init(jax.random.PRNGKey(1))
    data = _data()
    # (a) each process feeds only its rows of every global batch
    stream = dist.process_batches(data, batch_size, mesh, key=SEED)
    res = loop.fit(loss_fn, params, opt, stream, key=SEED, epochs=EPOCHS, mesh=mesh,
                   progress=False, checkpoint_dir=os.path.join(out, "ckpt") if full else None)
    np.savez(os.path.join(out, f"stream{process_id}.npz"), **_flat(dist.to_host(res.state.params)))
    if full:  # (b) the dataset on every device, fit's scanned fast path
        res_scan = loop.fit(loss_fn, params, opt, data, key=SEED, epochs=EPOCHS,
                            batch_size=batch_size, mesh=mesh, progress=False, fast_path="scan")
        np.savez(os.path.join(out, f"scan{process_id}.npz"),
                 **_flat(dist.to_host(res_scan.state.params)))
    facts = {"process_index": jax.process_index(), "process_count": jax.process_count(),
             "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
             "rows": [dist.process_rows(batch_size or N, mesh).start,
                      dist.process_rows(batch_size or N, mesh).stop],
             "history": res.history}
    with open(os.path.join(out, f"facts{process_id}.json"), "w") as fh:
        json.dump(facts, fh)
    dist.barrier("done")
    dist.shutdown()


if __name__ == "__main__":
    pid, nproc, port, out_dir, bs, mode = sys.argv[1:7]
    worker(int(pid), int(nproc), int(port), out_dir, None if bs == "None" else int(bs),
           mode == "full")
    sys.exit(0)


# ---------------------------------------------------------------------------------------------
# Tests


def _reference(batch_size):
    """One process's run, on the CPU with float32 products like the pair (which needs gloo's
    CPU collectives): beside a GPU or TPU, or under --emulate-precision, this process's default
    device would round its products (TF32, bfloat16) and the pair's do not."""
    import jax

    from train import loop

    init, loss_fn, opt = _model()
    with jax.default_device(jax.devices("cpu")[0]), jax.default_matmul_precision("highest"):
        return loop.fit(loss_fn, init(jax.random.PRNGKey(1)), opt, _data(), key=SEED,
                        epochs=EPOCHS, batch_size=batch_size, progress=False)


def _launch_pair(tmp_path, batch_size, *, full, timeout=240):
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)
    mode = "full" if full else "quick"
    procs = [subprocess.Popen([sys.executable, __file__, str(i), "2", str(port), str(tmp_path),
                               str(batch_size), mode], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    deadline = time.monotonic() + timeout
    logs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            logs.append(out)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"the two processes did not finish within {timeout} s")
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-4000:]


def _assert_params_close(got, ref, what):
    assert got.keys() == ref.keys()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-5, err_msg=f"{what} {k}")


def test_two_processes_feeding_their_shares_train_like_one(tmp_path):
    """Cheap variant: streaming fit only, a padded last batch, no checkpoint."""
    batch_size = 24  # 64 = 24 + 24 + 16: the last global batch has 8 weight-0 rows
    _launch_pair(tmp_path, batch_size, full=False)
    ref = _flat(_reference(batch_size).state.params)
    for i in range(2):
        _assert_params_close(dict(np.load(tmp_path / f"stream{i}.npz")), ref, f"process {i}")
    facts = [json.loads((tmp_path / f"facts{i}.json").read_text()) for i in range(2)]
    assert [f["rows"] for f in facts] == [[0, 12], [12, 24]]
    # The checker can fail: a 1e-4 nudge to one leaf is caught.
    nudged = {k: v + (1e-4 if k == "['o']['b']" else 0.0) for k, v in ref.items()}
    with pytest.raises(AssertionError, match="o.*b"):
        _assert_params_close(nudged, ref, "nudged")


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [BATCH])
def test_two_processes_train_like_one_and_checkpoint_restores_in_one(tmp_path, batch_size):
    """Full check (about 45 s idle): streaming and scanned fit, checkpoints written by the pair."""
    import jax

    from train import checkpoint, loop

    _launch_pair(tmp_path, batch_size, full=True)
    facts = [json.loads((tmp_path / f"facts{i}.json").read_text()) for i in range(2)]
    assert [f["process_index"] for f in facts] == [0, 1]
    assert all(f["process_count"] == 2 and f["device_count"] == 4
               and f["local_device_count"] == 2 for f in facts)
    # Each process fed a different half of every global batch.
    assert [f["rows"] for f in facts] == [[0, batch_size // 2], [batch_size // 2, batch_size]]

    ref = _reference(batch_size)
    ref_params = _flat(ref.state.params)
    for kind in ("stream", "scan"):
        for i in range(2):
            got = dict(np.load(tmp_path / f"{kind}{i}.npz"))
            _assert_params_close(got, ref_params, f"{kind} process {i}")
    for a, b in zip(facts[0]["history"], ref.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)

    # The pair wrote one logical checkpoint per epoch; restore the last in this one process.
    init, _, opt = _model()
    target = loop.init_train_state(init(jax.random.PRNGKey(1)), opt,
                                   key=jax.random.split(jax.random.PRNGKey(SEED))[0])
    manager = checkpoint.CheckpointManager(str(tmp_path / "ckpt"))
    steps_per_epoch = -(-N // batch_size)
    assert manager.latest_step() == EPOCHS * steps_per_epoch
    state, meta = manager.restore(target)
    assert int(state.step) == EPOCHS * steps_per_epoch and meta["next_epoch"] == EPOCHS
    pair = dict(np.load(tmp_path / "stream0.npz"))
    restored = _flat(state.params)
    for k in pair:
        np.testing.assert_array_equal(restored[k], pair[k])
    # Optimizer moments restored too, close to the single-process run's.
    for a, b in zip(jax.tree.leaves(state.opt_state), jax.tree.leaves(ref.state.opt_state),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


# --- single-process checks of the helpers (no subprocess) --------------------------------------


def test_process_batches_stream_equals_fit_on_device_data_bitwise():
    import jax

    from train import distributed as dist
    from train import loop

    init, loss_fn, opt = _model()
    params = init(jax.random.PRNGKey(1))
    data = _data()
    ref = loop.fit(loss_fn, params, opt, data, key=SEED, epochs=2, batch_size=24,
                   progress=False, fast_path="loop")
    for mesh in (None, dist.data_mesh()):   # default device / global arrays on a 1-device mesh
        stream = dist.process_batches(data, 24, mesh, key=SEED)
        got = loop.fit(loss_fn, params, opt, stream, key=SEED, epochs=2, mesh=mesh,
                       progress=False)
        for a, b in zip(jax.tree.leaves(got.state.params), jax.tree.leaves(ref.state.params),
                        strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert [h["loss"] for h in got.history] == [h["loss"] for h in ref.history]
    # The order follows the key: another key gives other batches.
    first = next(dist.process_batches(data, 24, None, key=SEED)(0))["y"]
    other = next(dist.process_batches(data, 24, None, key=SEED + 1)(0))["y"]
    assert not np.array_equal(first, other)


def test_process_batches_pads_the_last_batch_with_zero_weights():
    from train import distributed as dist

    data = _data()
    batches = list(dist.process_batches(data, 24, None, key=SEED)(0))
    assert [len(b["x"]) for b in batches] == [24, 24, 24]
    assert "weight" in batches[-1] and batches[-1]["weight"].sum() == N - 48
    seen = np.concatenate([b["y"][b["weight"] > 0] for b in batches])
    np.testing.assert_array_equal(np.sort(seen), np.sort(data["y"]))  # each example once
    with pytest.raises(ValueError, match="process_batches.*same leading axis"):
        dist.process_batches({"x": data["x"], "y": data["y"][:3]}, 4, None, key=0)


def test_single_process_helpers():
    import jax

    from train import distributed as dist

    mesh = dist.data_mesh()
    assert mesh.axis_names == ("data",) and mesh.devices.size == jax.device_count()
    assert dist.process_rows(8, mesh) == slice(0, 8)
    local = {"x": np.arange(12, dtype=np.float32).reshape(4, 3)}
    g = dist.global_batch(local, mesh)
    assert g["x"].shape == (4, 3)
    np.testing.assert_array_equal(dist.to_host(g)["x"], local["x"])
    with pytest.raises(ValueError, match="process_rows.*positive"):
        dist.process_rows(0, mesh)
    with pytest.raises(ValueError, match="process_rows.*axes"):
        dist.process_rows(4, mesh, axis="model")
    with pytest.raises(ValueError, match="global_batch.*scalar"):
        dist.global_batch({"x": np.float32(1.0)}, mesh)


@pytest.mark.parametrize("args, match", [
    (("localhost", 2, 0), "coordinator_address"),
    (("127.0.0.1:1234", 0, 0), "num_processes"),
    (("127.0.0.1:1234", 2, 2), "process_id"),
])
def test_initialize_rejects_bad_arguments(args, match):
    from train import distributed as dist

    with pytest.raises(ValueError, match=f"initialize.*{match}"):
        dist.initialize(*args)


def test_initialize_refuses_after_the_backend_started():
    import jax.numpy as jnp

    from train import distributed as dist

    jnp.zeros(1).block_until_ready()  # the backend is up in this (pytest) process
    with pytest.raises(RuntimeError, match="already initialized"):
        dist.initialize("127.0.0.1:1234", 2, 0)
