"""Tests of data-parallel training: 8 CPU devices (in a subprocess) match one device."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest
from jax.sharding import Mesh

from tests.train.test_loop import ADAM, ROOT, class_data, leaves_equal, mlp_loss, mlp_params
from train import loop
from train import sharding as shd

EIGHT_DEVICES = textwrap.dedent("""
    import json, os, sys, warnings
    sys.path.insert(0, {root!r})
    import jax, numpy as np
    from tests.train.test_loop import ADAM, class_data, mlp_loss, mlp_params
    from train import loop, checkpoint as ck
    assert jax.device_count() == 8, jax.devices()
    data = class_data(n=48)
    out = {{}}
    runs = {{}}
    for name, mesh, fp in [("one", None, "loop"), ("eight_scan", "auto", "scan")]:
        r = loop.fit(mlp_loss, mlp_params(), ADAM, data, key=1, epochs=3,
                     batch_size=16, mesh=mesh, fast_path=fp, progress=False,
                     eval_data=class_data(n=20, seed=9), eval_batch_size=8,
                     checkpoint_dir=os.path.join({tmp!r}, name))
        runs[name] = r
        out[name] = {{"params": jax.tree.map(lambda a: np.asarray(a).tolist(), r.state.params),
                     "history": r.history,
                     "devices": len(r.state.params["w1"].sharding.device_set)}}
    # full batch on 8 devices as well
    r = loop.fit(mlp_loss, mlp_params(), ADAM, data, key=1, epochs=2,
                 mesh="auto", progress=False)
    r1 = loop.fit(mlp_loss, mlp_params(), ADAM, data, key=1, epochs=2,
                  progress=False)
    out["full_batch_diff"] = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                                 for a, b in zip(jax.tree.leaves(r.state.params),
                                                 jax.tree.leaves(r1.state.params)))
    # streamed batches are split over the devices by shard_batch
    def stream(epoch):
        for s in range(0, 48, 16):
            yield {{k: v[s:s + 16] for k, v in data.items()}}
    r8, r1 = [loop.fit(mlp_loss, mlp_params(), ADAM, stream, key=1, epochs=2,
                       mesh=m, progress=False) for m in ("auto", None)]
    out["stream_diff"] = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                             for a, b in zip(jax.tree.leaves(r8.state.params),
                                             jax.tree.leaves(r1.state.params)))
    # a checkpoint written by the 8-device run restores onto one device
    target = jax.device_put(runs["one"].state, jax.devices()[0])
    restored, meta = ck.CheckpointManager(os.path.join({tmp!r}, "eight_scan")).restore(target)
    out["restored_devices"] = len(restored.params["w1"].sharding.device_set)
    out["restored_equal"] = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
                                zip(jax.tree.leaves(restored),
                                    jax.tree.leaves(runs["eight_scan"].state)))
    for bs, n in [(12, 48), (None, 50)]:
        try:
            loop.fit(mlp_loss, mlp_params(), ADAM, class_data(n=n), key=1,
                     batch_size=bs, mesh="auto", progress=False)
            out[f"error_{{bs}}"] = None
        except ValueError as e:
            out[f"error_{{bs}}"] = str(e)
    print(json.dumps(out))
""")


def test_eight_devices_match_one(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", EIGHT_DEVICES.format(root=ROOT,
                                                                       tmp=str(tmp_path))],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["one"]["devices"] == 1
    assert out["eight_scan"]["devices"] == 8
    one = jax.tree.leaves(out["one"]["params"])
    for name in ("eight_scan",):
        diff = max(abs(a - b) for x, y in zip(one, jax.tree.leaves(out[name]["params"]),
                                               strict=True)
                   for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True))
        assert diff <= 1e-5, (name, diff)
        for h1, h8 in zip(out["one"]["history"], out[name]["history"], strict=True):
            for k in ("loss", "accuracy", "grad_norm", "val_loss", "val_accuracy"):
                assert abs(h1[k] - h8[k]) <= 1e-5 * max(1.0, abs(h1[k])), (name, k)
            assert h1["count"] == h8["count"] == 48 and h8["val_count"] == 20
    assert out["full_batch_diff"] <= 1e-5 and out["stream_diff"] <= 1e-5
    assert out["restored_devices"] == 1 and out["restored_equal"]
    assert "not divisible" in out["error_12"] and "8 devices" in out["error_12"]
    assert "not divisible" in out["error_None"] and "50 examples" in out["error_None"]


def test_one_device_mesh_is_a_no_op():
    data = class_data(n=24)
    kw = dict(key=4, epochs=2, batch_size=8, fast_path="scan", progress=False)
    plain = loop.fit(mlp_loss, mlp_params(), ADAM, data, **kw)
    meshed = loop.fit(mlp_loss, mlp_params(), ADAM, data, mesh="auto", **kw)
    assert leaves_equal(plain.state, meshed.state) and plain.history == meshed.history


def test_make_mesh_validates():
    assert shd.make_mesh(None) is None
    assert shd.make_mesh("auto").axis_names == ("data",)
    with pytest.raises(ValueError, match="'data'"):
        shd.make_mesh(Mesh(jax.devices(), ("batch",)))
    with pytest.raises(ValueError, match="auto"):
        shd.make_mesh("all")
    with pytest.raises(TypeError, match="Mesh"):
        shd.make_mesh(8)
    shd.check_batch_divisible(7, None)   # no mesh: anything goes
