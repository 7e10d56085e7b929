# %% [markdown]
# # 10 Scaling out: the same `fit` on one device, 8 TPU cores or a GPU; checkpoints and resume
# Nothing in a jaxzoo model knows how many devices it runs on. `train.loop.fit(..., mesh=...)`
# does data parallelism with `jax.sharding`: a one-axis `Mesh` named `'data'` over the devices,
# each batch split along its first axis, the parameters and optimizer state replicated. XLA
# inserts the all-reduce of the gradients itself, so there is no `pmap` and no TPU-specific
# setup: on a Colab TPU runtime `mesh='auto'` uses its 8 cores, on a GPU runtime its GPU, and
# on a laptop its CPU. This notebook:
#
# 1. trains the same model with `mesh=None` and `mesh='auto'` and checks they agree;
# 2. on a CPU runtime, shows 8 devices anyway (XLA can split the CPU into 8 virtual devices);
# 3. checkpoints a run, "crashes" it, and resumes it to exactly the same result.

# %%
import json
import subprocess
import sys
import tempfile
import textwrap
import time

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from train import datasets
from train.checkpoint import CheckpointManager
from train.loop import fit
from zoo import mlp

print("devices:", jax.devices())
ds = datasets.load("digits")
train = {"x": ds.x_train.reshape(len(ds.x_train), -1), "y": ds.y_train}
test = {"x": ds.x_test.reshape(len(ds.x_test), -1), "y": ds.y_test}
cfg = mlp.Config(n_in=64, hidden=(128 if SMOKE else 256,), n_out=10)
loss_fn = lambda p, s, batch, key: mlp.loss(p, s, batch, key, cfg)
params0 = mlp.init(jax.random.PRNGKey(0), cfg)
EPOCHS = 3 if SMOKE else 20
BATCH = 64          # the global batch; it must divide by the number of devices
opt = optax.adam(1e-3)

# %% [markdown]
# ## 1. One call, any number of devices
# `mesh='auto'` builds `Mesh(jax.devices(), ('data',))`. With one device it is a no-op; with
# eight, each device computes the gradient of its eighth of the batch. The two runs must agree:
# bitwise on one device, to float rounding on several (the gradient is summed in a different
# order).

# %%
t0 = time.perf_counter()
one = fit(loss_fn, params0, opt, train, key=1, epochs=EPOCHS, batch_size=BATCH, eval_data=test,
          progress=False, fast_path="scan")
t_one = time.perf_counter() - t0
t0 = time.perf_counter()
many = fit(loss_fn, params0, opt, train, key=1, epochs=EPOCHS, batch_size=BATCH,
           eval_data=test, mesh="auto", progress=False, fast_path="scan")
t_many = time.perf_counter() - t0
w = jax.tree.leaves(many.state.params)[0]
print(f"mesh=None: {t_one:.1f} s, test accuracy {one.history[-1]['val_accuracy']:.1%}")
print(f"mesh='auto' over {jax.device_count()} device(s): {t_many:.1f} s, test accuracy "
      f"{many.history[-1]['val_accuracy']:.1%}; a weight lives on "
      f"{len(w.sharding.device_set)} device(s)")
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
           zip(jax.tree.leaves(one.state.params), jax.tree.leaves(many.state.params),
               strict=True))
print(f"max |params(1 device) - params({jax.device_count()} devices)| = {diff:.2e}")
tol = 0.0 if jax.device_count() == 1 else (1e-5 if jax.default_backend() == "cpu" else 1e-2)
assert diff <= tol, diff
assert len(w.sharding.device_set) == jax.device_count()

# %% [markdown]
# The mesh can also be built by hand, e.g. over a subset of the devices; `fit` needs only an
# axis named `'data'`. A sharded batch shows which rows each device holds.

# %%
mesh = Mesh(np.asarray(jax.devices()), ("data",))
batch_x = jax.device_put(train["x"][:BATCH], NamedSharding(mesh, PartitionSpec("data")))
for shard in batch_x.addressable_shards[:4]:
    print(shard.device, "holds rows", shard.index[0])
assert sum(s.data.shape[0] for s in batch_x.addressable_shards) == BATCH
hand = fit(loss_fn, params0, opt, train, key=1, epochs=1, batch_size=BATCH, mesh=mesh,
           progress=False, fast_path="scan")
assert np.isfinite(hand.history[-1]["loss"])

# %% [markdown]
# ## 2. Eight devices on a CPU
# Without a TPU we can still watch the same code run on 8 devices: XLA splits the host CPU into
# 8 virtual devices when `XLA_FLAGS=--xla_force_host_platform_device_count=8` is set before JAX
# starts, so we run the comparison in a fresh Python process. (On a TPU or multi-GPU runtime
# section 1 already did this on real devices.)

# %%
script = textwrap.dedent(f"""
    import json, sys
    sys.path[:0] = {[p for p in sys.path if p]!r}
    import jax, numpy as np, optax
    from train import datasets
    from train.loop import fit
    from zoo import mlp
    ds = datasets.load("digits")
    train = {{"x": ds.x_train.reshape(len(ds.x_train), -1), "y": ds.y_train}}
    cfg = mlp.Config(n_in=64, hidden=(64,), n_out=10)
    loss_fn = lambda p, s, b, k: mlp.loss(p, s, b, k, cfg)
    p0 = mlp.init(jax.random.PRNGKey(0), cfg)
    runs = [fit(loss_fn, p0, optax.adam(1e-3), train, key=1, epochs=2, batch_size=64,
                mesh=m, progress=False, fast_path="scan") for m in (None, "auto")]
    diff = max(float(np.max(np.abs(a - b))) for a, b in
               zip(jax.tree.leaves(runs[0].state.params), jax.tree.leaves(runs[1].state.params)))
    w = jax.tree.leaves(runs[1].state.params)[0]
    print(json.dumps({{"devices": jax.device_count(), "diff": diff,
                      "sharded_over": len(w.sharding.device_set),
                      "loss": [r.history[-1]["loss"] for r in runs]}}))
""")
if jax.default_backend() == "cpu" and jax.device_count() < 8:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(out)
    assert out["devices"] == 8 and out["sharded_over"] == 8
    assert out["diff"] < 1e-5
else:
    print(f"{jax.device_count()} {jax.default_backend()} device(s) here: section 1 ran on them")

# %% [markdown]
# ## 3. Checkpoints and resume
# With `checkpoint_dir`, `fit` saves everything needed to continue exactly after every epoch
# (orbax-checkpoint): parameters, optimizer state, model state, step, RNG key, the position in
# the data and the history. Colab runtimes disconnect; here a callback plays the disconnection
# by raising after epoch 3. `fit(..., resume=True)` then continues from the last checkpoint,
# and the result is the run that was never interrupted, bit for bit.

# %%
EPOCHS_CK = 4 if SMOKE else 10
reference = fit(loss_fn, params0, opt, train, key=1, epochs=EPOCHS_CK, batch_size=BATCH,
                progress=False, fast_path="scan")


class Disconnect(Exception):
    pass


def disconnect_after_3(epoch, state, logs):
    if len(seen) == 2:     # the third epoch has finished; its checkpoint is not yet written
        raise Disconnect
    seen.append(epoch)


ckpt_dir = tempfile.mkdtemp(prefix="jaxzoo_ckpt_")
seen = []
try:
    fit(loss_fn, params0, opt, train, key=1, epochs=EPOCHS_CK, batch_size=BATCH,
        checkpoint_dir=ckpt_dir, callbacks=[disconnect_after_3], progress=False,
        fast_path="scan")
except Disconnect:
    print("disconnected; checkpoints on disk:", CheckpointManager(ckpt_dir).steps())

resumed = fit(loss_fn, params0, opt, train, key=1, epochs=EPOCHS_CK, batch_size=BATCH,
              checkpoint_dir=ckpt_dir, resume=True, progress=False, fast_path="scan")
print("resumed run's epochs:", [h["epoch"] for h in resumed.history],
      "| losses equal:", [h["loss"] for h in resumed.history] == [h["loss"] for h in
                                                                  reference.history])
same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
           zip(jax.tree.leaves(resumed.state), jax.tree.leaves(reference.state), strict=True))
print("final state identical to the uninterrupted run:", same)
assert same
assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]

# %% [markdown]
# A checkpoint can be restored by hand as well, e.g. to evaluate or to sample from a trained
# model: `CheckpointManager.restore(target)` fills a state of the same structure (a fresh one
# from `init_train_state`), and names the first leaf that does not match if the model changed.

# %%
manager = CheckpointManager(ckpt_dir)
restored, meta = manager.restore(reference.state)
print("latest checkpoint step", manager.latest_step(), "| saved meta keys:", sorted(meta)[:6])
assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
           zip(jax.tree.leaves(restored.params), jax.tree.leaves(reference.state.params),
               strict=True))
