"""Run manifest: the parameter hash is a fixed, documented function of the tree, and the
manifest records what the running interpreter actually imported."""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import flax
import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax
import pytest

from train import manifest as mf


def _tree(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "fc1": {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                "b": jnp.zeros(4, jnp.float32)},
        "out": {"w": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32),
                "b": jnp.asarray([1, 2], jnp.int32)},
    }


def _reference_hash(tree):
    """Transcription of the documented rule, written independently of the module."""
    items = []

    def visit(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                visit(prefix + f"['{k}']", v)
        else:
            items.append((prefix, np.asarray(node)))

    visit("", tree)
    h = hashlib.sha256()
    for path, a in sorted(items, key=lambda r: r[0]):
        header = f"{path}|{a.dtype.str}|{a.shape}\n".encode()
        h.update(len(header).to_bytes(8, "little") + header + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_params_hash_matches_reference_and_ignores_insertion_order():
    t = _tree()
    reordered = {"out": {"b": t["out"]["b"], "w": t["out"]["w"]},
                 "fc1": {"b": t["fc1"]["b"], "w": t["fc1"]["w"]}}
    assert mf.params_hash(t) == _reference_hash(t)
    assert mf.params_hash(reordered) == mf.params_hash(t)
    # NumPy leaves hash like the jax arrays they hold.
    assert mf.params_hash(jax.tree.map(np.asarray, t)) == mf.params_hash(t)


@pytest.mark.parametrize("change", ["bit", "dtype", "shape", "key"])
def test_params_hash_detects_every_kind_of_change(change):
    t = _tree()
    w = np.asarray(t["fc1"]["w"])
    if change == "bit":  # flip the lowest mantissa bit of one entry
        bits = w.view(np.uint32).copy()
        bits[0, 0] ^= 1
        t["fc1"]["w"] = jnp.asarray(bits.view(np.float32))
    elif change == "dtype":  # same bytes, different meaning
        t["fc1"]["w"] = jnp.asarray(w.view(np.int32))
    elif change == "shape":  # same bytes, different shape
        t["fc1"]["w"] = jnp.asarray(w.reshape(4, 3))
    else:
        t["fc2"] = t.pop("fc1")
    assert mf.params_hash(t) != mf.params_hash(_tree())
    # The reference rule sees the same change, so the checker itself is not blind.
    assert _reference_hash(t) != _reference_hash(_tree())


def test_params_hash_same_in_a_separate_process():
    code = (
        "import sys; sys.path.insert(0, '.');"
        "import tests.train.test_manifest as t; from train.manifest import params_hash;"
        "print(params_hash(t._tree()))"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == mf.params_hash(_tree())


def test_params_hash_rejects_non_numeric_leaves():
    with pytest.raises(TypeError, match="params_hash"):
        mf.params_hash({"w": np.array(["a", "b"])})


@dataclasses.dataclass(frozen=True)
class _Cfg:
    hidden: int = 8
    lr: float = 1e-3
    activation: str = "relu"


def test_write_manifest_records_config_versions_and_runtime(tmp_path):
    params = _tree(3)
    out = tmp_path / "run"
    returned = mf.write_manifest(out, config=_Cfg(), seed=7, params=params,
                                 extra={"final_loss": np.float32(0.25)})
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == returned == mf.read_manifest(out)
    assert on_disk["config"] == {"hidden": 8, "lr": 1e-3, "activation": "relu"}
    assert on_disk["seed"] == 7
    v = on_disk["versions"]
    assert v["jax"] == jax.__version__ and v["optax"] == optax.__version__
    assert v["numpy"] == np.__version__ and v["flax"] == flax.__version__
    assert v["jaxlib"] == jaxlib.__version__
    assert v["python"] == ".".join(map(str, sys.version_info[:3]))
    assert on_disk["backend"] == jax.default_backend()
    assert on_disk["device_count"] == jax.device_count()
    assert on_disk["process_count"] == jax.process_count() == 1
    assert on_disk["param_count"] == 3 * 4 + 4 + 4 * 2 + 2
    assert on_disk["params_hash"] == _reference_hash(params)
    assert on_disk["extra"] == {"final_loss": 0.25}
    # No temporary files left behind by the atomic write.
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_write_manifest_rejects_bad_extra(tmp_path):
    with pytest.raises(TypeError, match="extra"):
        mf.write_manifest(tmp_path, config={}, seed=0, params=_tree(), extra=[1, 2])
