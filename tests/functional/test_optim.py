"""functional.optim against optax step by step, and against NumPy transcriptions of the
notes' update rules (seed 004 sections 4.5-4.7) where optax has no counterpart."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from functional import optim as O
from functional import schedules as S

STEPS = 100
SHAPES = {"dense": {"w": (5, 3), "b": (3,)}, "conv": (2, 2, 1, 4), "scale": ()}
RTOL = {jnp.float32: 1e-6, jnp.float64: 1e-12}


def _leaves_of(shapes):
    return jax.tree.map(lambda s: s, shapes, is_leaf=lambda x: isinstance(x, tuple))


def make_params(dtype, seed=0):
    shapes = _leaves_of(SHAPES)
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(
        treedef, [jnp.asarray(rng.normal(size=s), dtype) for s in leaves]
    )


def make_grads(dtype, steps=STEPS, seed=1):
    """<dtype>[steps, *shape] per leaf; each leaf has its own scale (1e-2 .. 10)."""
    leaves, treedef = jax.tree.flatten(SHAPES, is_leaf=lambda x: isinstance(x, tuple))
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-2, 1, size=len(leaves))
    return jax.tree.unflatten(
        treedef,
        [jnp.asarray(rng.normal(size=(steps, *s)) * c, dtype)
         for s, c in zip(leaves, scales, strict=True)],
    )


def run_pairs(pairs, params, grads):
    """One jitted function: for each (ours, ref) pair, a lax.scan over the gradient sequence
    feeding both, each applying its own updates. Returns per pair (updates_o, updates_r,
    states_o, states_r), each stacked over steps."""

    def go(params, grads):
        out = []
        for ours, ref in pairs:

            def step(carry, g, ours=ours, ref=ref):
                po, so, pr, sr = carry
                uo, so = ours.update(g, so, po)
                ur, sr = ref.update(g, sr, pr)
                carry = (O.apply_updates(po, uo), so, optax.apply_updates(pr, ur), sr)
                return carry, (uo, ur, so, sr)

            init = (params, ours.init(params), params, ref.init(params))
            out.append(jax.lax.scan(step, init, grads)[1])
        return out

    return jax.jit(go)(params, grads)


def assert_trees_close(a, b, rtol, what="", scaled=False):
    """Leaf-by-leaf rtol; with ``scaled`` also atol = rtol * max|b| per leaf (for trajectories
    that cross zero, where a pure relative test measures only the crossing)."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb), f"{what}: {len(la)} leaves vs {len(lb)}"
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype, f"{what}: dtype {x.dtype} vs {y.dtype}"
        atol = rtol * float(np.max(np.abs(y))) if scaled and y.size else 0.0
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=what)
    return len(la)


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(x, "_fields")


def compare_states(ours, ref, rtol, what="state"):
    """Compare two optimizer states field by field where their structures coincide (same
    NamedTuple field names; plain tuples position by position). Returns the number of leaves
    compared."""
    if _is_namedtuple(ours) and _is_namedtuple(ref):
        n = 0
        for f in ours._fields:
            if f in ref._fields:
                n += compare_states(getattr(ours, f), getattr(ref, f), rtol, f"{what}.{f}")
        return n
    if isinstance(ours, tuple) and isinstance(ref, tuple) and not _is_namedtuple(ours):
        assert len(ours) == len(ref), f"{what}: {len(ours)} entries vs {len(ref)}"
        pairs = enumerate(zip(ours, ref, strict=True))
        return sum(compare_states(a, b, rtol, f"{what}[{i}]") for i, (a, b) in pairs)
    if _is_namedtuple(ours) or _is_namedtuple(ref):
        return 0  # e.g. EmptyState against optax's MaskedState: no common fields
    return assert_trees_close(ours, ref, rtol, what)


# (id, our optimizer, optax's) for every optimizer with an optax counterpart; several
# hyperparameter settings each, schedules included. Built lazily so that x64 applies.
def cases():
    # Both sides get the same schedule (ours: it also shows optax running on our schedules);
    # schedules themselves are compared with optax's in test_schedules.py. (optax's
    # exponential_decay computes in float32 even under x64, so its values would differ from
    # ours at 1e-8 there.)
    sched_o = sched_r = S.exponential_decay(0.1, 20, 0.7, staircase=True)
    cos_o = cos_r = S.cosine_decay(0.05, 80, 0.1)
    mask = {"dense": {"w": True, "b": False}, "conv": True, "scale": False}
    return {
        "sgd": [
            (O.sgd(0.1), optax.sgd(0.1)),
            (O.sgd(0.05, momentum=0.9), optax.sgd(0.05, momentum=0.9)),
            (O.sgd(0.05, 0.5, nesterov=True), optax.sgd(0.05, 0.5, nesterov=True)),
            (O.sgd(sched_o), optax.sgd(sched_r)),
        ],
        "momentum": [
            (O.momentum(0.05, 0.9), optax.sgd(0.05, momentum=0.9)),
            (O.momentum(cos_o, 0.0), optax.sgd(cos_r, momentum=0.0)),
        ],
        "nesterov": [
            (O.nesterov(0.05, 0.9), optax.sgd(0.05, 0.9, nesterov=True)),
            (O.nesterov(cos_o, 0.6), optax.sgd(cos_r, 0.6, nesterov=True)),
        ],
        "adagrad": [
            (O.adagrad(0.1), optax.adagrad(0.1)),
            (O.adagrad(0.5, 0.0, 1e-10), optax.adagrad(0.5, 0.0, 1e-10)),
            (O.adagrad(sched_o, 1.0), optax.adagrad(sched_r, 1.0)),
        ],
        "rmsprop": [
            (O.rmsprop(0.01), optax.rmsprop(0.01)),
            (O.rmsprop(0.01, 0.99, eps_in_sqrt=False),
             optax.rmsprop(0.01, 0.99, eps_in_sqrt=False)),
            (O.rmsprop(0.01, 0.95, 1e-6, 1.0, bias_correction=True),
             optax.rmsprop(0.01, 0.95, 1e-6, 1.0, bias_correction=True)),
            (O.rmsprop(cos_o, momentum=0.9, nesterov=True),
             optax.rmsprop(cos_r, momentum=0.9, nesterov=True)),
        ],
        "rmsprop_centered": [
            (O.rmsprop(0.01, centered=True), optax.rmsprop(0.01, centered=True)),
            (O.rmsprop(0.01, 0.8, 1e-4, centered=True, eps_in_sqrt=False, momentum=0.5),
             optax.rmsprop(0.01, 0.8, 1e-4, centered=True, eps_in_sqrt=False, momentum=0.5)),
            (O.rmsprop(sched_o, 0.9, initial_scale=0.5, centered=True, bias_correction=True),
             optax.rmsprop(sched_r, 0.9, initial_scale=0.5, centered=True,
                           bias_correction=True)),
        ],
        "adadelta": [
            (O.adadelta(), optax.adadelta(1.0)),
            (O.adadelta(0.5, 0.95, 1e-4, weight_decay=0.01),
             optax.adadelta(0.5, 0.95, 1e-4, weight_decay=0.01)),
        ],
        "adam": [
            (O.adam(1e-3), optax.adam(1e-3)),
            (O.adam(0.01, 0.5, 0.9, 1e-6, 1e-8), optax.adam(0.01, 0.5, 0.9, 1e-6, 1e-8)),
            (O.adam(sched_o, b2=0.99), optax.adam(sched_r, b2=0.99)),
            (O.adam(0.01, nesterov=True), optax.adam(0.01, nesterov=True)),
        ],
        "adamw": [
            (O.adamw(1e-3), optax.adamw(1e-3)),
            (O.adamw(cos_o, 0.8, 0.99, weight_decay=0.1, mask=mask),
             optax.adamw(cos_r, 0.8, 0.99, weight_decay=0.1, mask=mask)),
        ],
        "adamax": [
            (O.adamax(0.01), optax.adamax(0.01)),
            (O.adamax(sched_o, 0.5, 0.99, 1e-6), optax.adamax(sched_r, 0.5, 0.99, 1e-6)),
        ],
        "nadam": [
            (O.nadam(1e-3), optax.nadam(1e-3)),
            (O.nadam(cos_o, 0.8, 0.95), optax.nadam(cos_r, 0.8, 0.95)),
        ],
        "lamb": [
            (O.lamb(1e-3), optax.lamb(1e-3)),
            (O.lamb(0.01, weight_decay=0.01), optax.lamb(0.01, weight_decay=0.01)),
        ],
        "blocks": [
            (O.chain(O.clip_by_value(0.5), O.sgd(0.1)), optax.chain(optax.clip(0.5),
                                                                   optax.sgd(0.1))),
            (O.chain(O.clip_by_global_norm(5.0), O.adam(0.01)),
             optax.chain(optax.clip_by_global_norm(5.0), optax.adam(0.01))),
            (O.chain(O.add_decayed_weights(0.05), O.scale_by_schedule(cos_o)),
             optax.chain(optax.add_decayed_weights(0.05), optax.scale_by_schedule(cos_r))),
            (O.chain(O.add_decayed_weights(cos_o, mask), O.scale(-0.1)),
             optax.chain(optax.add_decayed_weights(cos_r, mask), optax.scale(-0.1))),
        ],
    }


CASE_NAMES = list(cases())


@pytest.mark.parametrize("name", CASE_NAMES)
def test_matches_optax_jitted_f32_and_f64(name):
    for dtype in (jnp.float32, jnp.float64):
        with jax.enable_x64(dtype == jnp.float64):
            pairs = cases()[name]
            results = run_pairs(pairs, make_params(dtype), make_grads(dtype))
            for i, (uo, ur, so, sr) in enumerate(results):
                what = f"{name}[{i}] {jnp.dtype(dtype).name}"
                assert_trees_close(uo, ur, RTOL[dtype], f"{what} updates")
                assert jax.tree.leaves(uo)[0].shape[0] == STEPS
                compare_states(so, sr, RTOL[dtype], f"{what} state")


def test_states_compare_leaf_by_leaf():
    """The state comparison is not vacuous: Adam's count, mu and nu are all compared."""
    params, grads = make_params(jnp.float32), make_grads(jnp.float32, steps=3)
    (_, _, so, sr), = run_pairs([(O.adam(0.1), optax.adam(0.1))], params, grads)
    assert compare_states(so, sr, 1e-6) == 1 + 2 * len(jax.tree.leaves(params))


def test_comparison_fails_on_a_wrong_optimizer():
    params, grads = make_params(jnp.float32), make_grads(jnp.float32, steps=20)
    (uo, ur, so, sr), = run_pairs([(O.adam(0.1, b2=0.998), optax.adam(0.1))], params, grads)
    with pytest.raises(AssertionError):
        assert_trees_close(uo, ur, 1e-6)
    with pytest.raises(AssertionError):
        compare_states(so, sr, 1e-6)


EAGER = {
    "sgd": lambda: (O.sgd(0.1, 0.9), optax.sgd(0.1, 0.9)),
    "nesterov": lambda: (O.nesterov(0.05, 0.9), optax.sgd(0.05, 0.9, nesterov=True)),
    "adagrad": lambda: (O.adagrad(0.1), optax.adagrad(0.1)),
    "rmsprop": lambda: (O.rmsprop(0.01, centered=True, momentum=0.5),
                        optax.rmsprop(0.01, centered=True, momentum=0.5)),
    "adadelta": lambda: (O.adadelta(0.5, weight_decay=0.01),
                         optax.adadelta(0.5, weight_decay=0.01)),
    "adam": lambda: (O.adam(S.cosine_decay(0.01, 50)),
                     optax.adam(optax.cosine_decay_schedule(0.01, 50))),
    "adamw": lambda: (O.adamw(0.01, weight_decay=0.1), optax.adamw(0.01, weight_decay=0.1)),
    "adamax": lambda: (O.adamax(0.01), optax.adamax(0.01)),
    "nadam": lambda: (O.nadam(0.01), optax.nadam(0.01)),
    "lamb": lambda: (O.lamb(0.01, weight_decay=0.01), optax.lamb(0.01, weight_decay=0.01)),
}


def test_matches_optax_not_jitted():
    """Eager (op-by-op) execution, 100 steps, on a two-leaf tree with a scalar; float32."""
    rng = np.random.default_rng(3)
    params = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32), "s": jnp.float32(0.3)}
    gs = [{"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
           "s": jnp.float32(rng.normal())} for _ in range(STEPS)]
    for name, make in EAGER.items():
        ours, ref = make()
        so, sr, po, pr = ours.init(params), ref.init(params), params, params
        for g in gs:
            uo, so = ours.update(g, so, po)
            ur, sr = ref.update(g, sr, pr)
            po, pr = O.apply_updates(po, uo), optax.apply_updates(pr, ur)
        assert_trees_close(uo, ur, 1e-6, f"{name} eager updates")
        assert_trees_close(po, pr, 1e-6, f"{name} eager params")
        assert compare_states(so, sr, 1e-6, f"{name} eager state") > 0


# --------------------------------------------------------------------------- mixing with optax


def test_ours_inside_optax_chain_and_optax_inside_ours():
    params, grads = make_params(jnp.float32), make_grads(jnp.float32, steps=30)
    pairs = [
        (optax.chain(O.clip_by_global_norm(3.0), O.adam(0.01)),
         optax.chain(optax.clip_by_global_norm(3.0), optax.adam(0.01))),
        (O.chain(optax.clip_by_global_norm(3.0), optax.scale_by_adam(), O.scale(-0.01)),
         optax.chain(optax.clip_by_global_norm(3.0), optax.adam(0.01))),
    ]
    (uo, ur, so, sr), (uo2, ur2, so2, sr2) = run_pairs(pairs, params, grads)
    assert_trees_close(uo, ur, 1e-6, "ours in optax.chain: updates")
    assert compare_states(so, sr, 1e-6, "ours in optax.chain: state") == 1 + 2 * 4
    assert_trees_close(uo2, ur2, 1e-6, "optax in our chain: updates")
    # Nesting differs (our chain is flat, optax.adam is a chain inside the chain); the
    # leaves (count, mu, nu) line up in order.
    assert assert_trees_close(so2, sr2, 1e-6, "optax in our chain: state") == 1 + 2 * 4


def test_apply_updates_keeps_dtype_like_optax():
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
    updates = {"a": jnp.full(3, 0.1, jnp.float32), "b": jnp.full(2, 0.1, jnp.float32)}
    ours, ref = O.apply_updates(params, updates), optax.apply_updates(params, updates)
    assert jax.tree.map(lambda x: x.dtype, ours) == jax.tree.map(lambda x: x.dtype, ref)
    assert_trees_close(ours, ref, 0.0)


# --------------------------------------------------------------------------- conventions


def np_sgd_momentum(w, dw, config):
    """Seed 004 section 4.5, verbatim apart from the TODO banners."""
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    next_w = w + v
    config["velocity"] = v
    return next_w, config


def np_nesterov_cs231n(w, dw, config):
    """cs231n's Nesterov in the velocity convention: x += -mu * v_prev + (1 + mu) * v."""
    v_prev = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v_prev - config["learning_rate"] * dw
    config["velocity"] = v
    return w - config["momentum"] * v_prev + (1 + config["momentum"]) * v, config


def np_rmsprop(x, dx, config):
    """Seed 004 section 4.6 (eps outside the root, decay 0.99)."""
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", np.zeros_like(x))
    config["cache"] = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dx**2
    next_x = x - config["learning_rate"] * dx / (np.sqrt(config["cache"]) + config["epsilon"])
    return next_x, config


def np_adam_notes(x, dx, config):
    """Seed 004 section 4.7: Adam without bias correction, as the notes write it."""
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(x))
    config.setdefault("v", np.zeros_like(x))
    config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dx
    config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * (dx**2)
    next_x = x - config["learning_rate"] * config["m"] / (np.sqrt(config["v"]) + config["epsilon"])
    return next_x, config


def np_adagrad_torch(x, dx, config):
    """PyTorch's Adagrad: sum += g**2; x -= lr * g / (sqrt(sum) + eps); sum starts at 0."""
    s = config.get("sum", np.zeros_like(x)) + dx * dx
    config["sum"] = s
    return x - config["learning_rate"] * dx / (np.sqrt(s) + config["eps"]), config


def np_nadam_no_bias_correction(x, dx, config):
    """m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; x -= lr (b1 m + (1-b1) g) / (sqrt(v) + eps)."""
    b1, b2 = config["b1"], config["b2"]
    m = b1 * config.get("m", np.zeros_like(x)) + (1 - b1) * dx
    v = b2 * config.get("v", np.zeros_like(x)) + (1 - b2) * dx**2
    config["m"], config["v"] = m, v
    return x - config["learning_rate"] * (b1 * m + (1 - b1) * dx) / (np.sqrt(v) + 1e-8), config


NUMPY_VARIANTS = {
    "momentum notes form": (lambda: O.momentum(0.05, 0.9, form="notes"), np_sgd_momentum,
                            {"learning_rate": 0.05, "momentum": 0.9}),
    "nesterov notes form": (lambda: O.nesterov(0.05, 0.8, form="notes"), np_nesterov_cs231n,
                            {"learning_rate": 0.05, "momentum": 0.8}),
    "rmsprop notes": (lambda: O.rmsprop(0.01, 0.99, 1e-8, eps_in_sqrt=False), np_rmsprop, {}),
    "adam notes": (lambda: O.adam(1e-3, bias_correction=False), np_adam_notes, {}),
    "adam notes b": (lambda: O.adam(0.02, 0.5, 0.9, 1e-6, bias_correction=False), np_adam_notes,
                     {"learning_rate": 0.02, "beta1": 0.5, "beta2": 0.9, "epsilon": 1e-6}),
    "adagrad torch": (lambda: O.adagrad(0.1, 0.0, 1e-10, eps_in_sqrt=False), np_adagrad_torch,
                      {"learning_rate": 0.1, "eps": 1e-10}),
    "nadam no bias correction": (lambda: O.nadam(0.01, 0.8, 0.99, bias_correction=False),
                                 np_nadam_no_bias_correction,
                                 {"learning_rate": 0.01, "b1": 0.8, "b2": 0.99}),
}


def _trajectories(opts, params, grads):
    """Parameter trajectories <f>[steps, *shape] per leaf for each optimizer; one compile."""

    def one(opt, p, gs):
        def step(p_s, g):
            p, s = p_s
            u, s = opt.update(g, s, p)
            p = O.apply_updates(p, u)
            return (p, s), p

        return jax.lax.scan(step, (p, opt.init(p)), gs)[1]

    return jax.jit(lambda p, gs: [one(opt, p, gs) for opt in opts])(params, grads)


def test_variants_without_optax_counterpart_match_numpy():
    """Each convention variant against a NumPy transcription of its formula, 100 steps: the
    parameter trajectories agree to 1e-12 in float64 and 1e-5 in float32 relative to each
    leaf's scale (NumPy and XLA round differently; 100 steps of accumulated rounding)."""
    for dtype, rtol in ((jnp.float64, 1e-12), (jnp.float32, 1e-5)):
        with jax.enable_x64(dtype == jnp.float64):
            params, grads = make_params(dtype), make_grads(dtype)
            trajectories = _trajectories([v[0]() for v in NUMPY_VARIANTS.values()], params, grads)
            for ours, (name, (_, np_rule, config)) in zip(
                trajectories, NUMPY_VARIANTS.items(), strict=True
            ):
                leaves, treedef = jax.tree.flatten(params)
                g_leaves = jax.tree.leaves(grads)
                expected = []
                for w, g in zip(leaves, g_leaves, strict=True):
                    w, g, cfg, hist = np.asarray(w), np.asarray(g), dict(config), []
                    for t in range(STEPS):
                        w, cfg = np_rule(w, g[t], cfg)
                        hist.append(w)
                    expected.append(np.stack(hist))
                assert_trees_close(ours, jax.tree.unflatten(treedef, expected), rtol,
                                   f"{name} {jnp.dtype(dtype).name}", scaled=True)


def test_momentum_forms_coincide_for_constant_rate_and_differ_for_a_schedule():
    with jax.enable_x64(True):
        params, grads = make_params(jnp.float64), make_grads(jnp.float64)
        sched = S.exponential_decay(0.05, 10, 0.5)
        opts = [fn(lr, 0.9, form=form) for fn in (O.momentum, O.nesterov)
                for lr in (0.05, sched) for form in ("optax", "notes")]
        t = _trajectories(opts, params, grads)
        for i, name in enumerate(("momentum", "nesterov")):
            constant_optax, constant_notes, sched_optax, sched_notes = t[4 * i: 4 * i + 4]
            assert_trees_close(constant_optax, constant_notes, 1e-12, name, scaled=True)
            with pytest.raises(AssertionError):
                assert_trees_close(sched_optax, sched_notes, 1e-6, scaled=True)
    # In float32 the two forms round differently but stay within 1e-5.
    params, grads = make_params(jnp.float32), make_grads(jnp.float32)
    a, b = _trajectories([O.momentum(0.05, 0.9), O.momentum(0.05, 0.9, form="notes")],
                         params, grads)
    assert_trees_close(a, b, 1e-5, "momentum f32", scaled=True)


def test_notes_momentum_state_is_the_velocity():
    p = {"w": jnp.array([1.0, 2.0])}
    opt = O.momentum(0.1, 0.9, form="notes")
    s = opt.init(p)
    u, s = opt.update({"w": jnp.array([1.0, -1.0])}, s, p)
    u, s = opt.update({"w": jnp.array([2.0, 0.0])}, s, p)
    v1 = -0.1 * np.array([1.0, -1.0])
    v2 = 0.9 * v1 - 0.1 * np.array([2.0, 0.0])
    np.testing.assert_allclose(s[1].trace["w"], v2, rtol=1e-6)
    np.testing.assert_allclose(u["w"], v2, rtol=1e-6)


def test_adagrad_initial_accumulator_and_eps_placement():
    """One step from a known state: the two keywords change the result as the formulas say."""
    p, g = {"w": jnp.array([0.0])}, {"w": jnp.array([2.0])}
    lr, eps = 0.5, 1e-2
    for init, in_sqrt, expected in [
        (0.1, True, -lr * 2 / np.sqrt(4.1 + eps)),
        (0.0, True, -lr * 2 / np.sqrt(4.0 + eps)),
        (0.1, False, -lr * 2 / (np.sqrt(4.1) + eps)),
        (0.0, False, -lr * 2 / (2.0 + eps)),
    ]:
        opt = O.adagrad(lr, init, eps, eps_in_sqrt=in_sqrt)
        u, _ = opt.update(g, opt.init(p), p)
        np.testing.assert_allclose(u["w"], [expected], rtol=1e-6)


# --------------------------------------------------------------------------- learning rate state


def test_learning_rate_is_read_from_the_state_and_follows_the_schedule():
    sched = S.warmup(S.cosine_decay(0.1, 50, 0.01), 10)
    opt = O.adam(sched)
    p = {"w": jnp.ones(3)}
    s = opt.init(p)
    step = jax.jit(lambda s: opt.update({"w": jnp.ones(3)}, s, p)[1])
    for t in range(70):
        # 1e-5: the state's value comes from the compiled step, the reference from eager ops
        np.testing.assert_allclose(O.current_learning_rate(s), sched(jnp.int32(t)), rtol=1e-5)
        s = step(s)


def test_changing_the_rate_never_recompiles():
    traces = []
    p = {"w": jnp.ones(3)}
    g = {"w": jnp.full(3, 0.5)}

    def step(opt, s):
        traces.append(1)
        return opt.update(g, s, p)

    opt = O.sgd(0.1)
    f = jax.jit(lambda s: step(opt, s))
    s = opt.init(p)
    u1, s = f(s)
    s = O.set_learning_rate(s, 0.01)
    u2, s = f(s)
    np.testing.assert_allclose(O.current_learning_rate(s), 0.01, rtol=1e-7)
    np.testing.assert_allclose(u2["w"], -0.01 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(u1["w"], -0.1 * 0.5, rtol=1e-6)
    # A schedule changes the rate every step inside the one compiled function.
    sopt = O.rmsprop(S.exponential_decay(0.1, 1, 0.5))
    fs = jax.jit(lambda s: step(sopt, s))
    s = sopt.init(p)
    rates = []
    for _ in range(5):
        rates.append(float(O.current_learning_rate(s)))
        _, s = fs(s)
    np.testing.assert_allclose(rates, 0.1 * 0.5 ** np.arange(5), rtol=1e-6)
    assert len(traces) == 2  # one trace per optimizer, none per rate


def test_current_learning_rate_errors():
    with pytest.raises(ValueError, match="current_learning_rate"):
        O.current_learning_rate(optax.adam(0.1).init({"w": jnp.ones(2)}))
    with pytest.raises(ValueError, match="learning_rate"):
        O.set_learning_rate(O.sgd(0.1).init({"w": jnp.ones(2)}), -1.0)


# --------------------------------------------------------------------------- validation


BAD = [
    (O.sgd, dict(learning_rate=0.0), "learning_rate"),
    (O.sgd, dict(learning_rate=-0.1), "learning_rate"),
    (O.sgd, dict(learning_rate=0.1, momentum=1.0), "momentum"),
    (O.momentum, dict(learning_rate=0.1, momentum=-0.1), "momentum"),
    (O.nesterov, dict(learning_rate=0.1, momentum=1.5), "momentum"),
    (O.momentum, dict(learning_rate=0.1, form="pytorch"), "form"),
    (O.adagrad, dict(learning_rate=0.1, eps=0.0), "eps"),
    (O.adagrad, dict(learning_rate=0.1, initial_accumulator_value=-1.0),
     "initial_accumulator_value"),
    (O.rmsprop, dict(learning_rate=0.1, decay=1.0), "decay"),
    (O.rmsprop, dict(learning_rate=0.1, eps=-1e-8), "eps"),
    (O.rmsprop, dict(learning_rate=0.1, momentum=1.0), "momentum"),
    (O.adadelta, dict(rho=1.2), "rho"),
    (O.adadelta, dict(weight_decay=-0.1), "weight_decay"),
    (O.adam, dict(learning_rate=-1e-3), "learning_rate"),
    (O.adam, dict(learning_rate=1e-3, b1=1.0), "b1"),
    (O.adam, dict(learning_rate=1e-3, b2=-0.5), "b2"),
    (O.adam, dict(learning_rate=1e-3, eps=0.0), "eps"),
    (O.adamw, dict(learning_rate=1e-3, weight_decay=-1e-4), "weight_decay"),
    (O.adamax, dict(learning_rate=1e-3, b2=1.0), "b2"),
    (O.nadam, dict(learning_rate=1e-3, b1=2.0), "b1"),
    (O.lamb, dict(learning_rate=1e-3, weight_decay=-1.0), "weight_decay"),
    (O.add_decayed_weights, dict(weight_decay=-0.5), "weight_decay"),
    (O.clip_by_global_norm, dict(max_norm=0.0), "max_norm"),
    (O.clip_by_value, dict(max_delta=-1.0), "max_delta"),
    (O.trace, dict(decay=1.0), "decay"),
]


@pytest.mark.parametrize("fn,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD])
def test_bad_hyperparameters_raise_naming_argument_and_value(fn, kwargs, arg):
    with pytest.raises(ValueError) as err:
        fn(**kwargs)
    msg = str(err.value)
    assert fn.__name__ in msg and arg in msg and repr(kwargs[arg]) in msg, msg


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="adam: b1"):
        O.adam(1e-3, b1="0.9")
    with pytest.raises(TypeError, match="sgd: learning_rate"):
        O.sgd(None)


def test_schedules_and_tracers_skip_the_positive_rate_check():
    O.adam(lambda count: 0.0 * count)  # a schedule may reach 0
    jax.jit(lambda b1: O.adam(0.1, b1=b1).update(
        {"w": jnp.ones(2)}, O.adam(0.1).init({"w": jnp.ones(2)}))[0])(0.9)


# --------------------------------------------------------------------------- structure, jit, vmap

ALL = {
    "sgd": lambda: O.sgd(0.1),
    "momentum_notes": lambda: O.momentum(0.01, 0.9, form="notes"),
    "nesterov": lambda: O.nesterov(0.01, 0.9),
    "adagrad": lambda: O.adagrad(0.1),
    "rmsprop": lambda: O.rmsprop(0.01),
    # initial_scale > 0: with nu = mu = 0 the first bias-corrected variance g^2 - g^2 is pure
    # rounding noise, and vmapped and single runs would differ only by that noise.
    "rmsprop_centered": lambda: O.rmsprop(0.01, 0.9, 1e-8, 0.1, centered=True,
                                          bias_correction=True),
    "adadelta": lambda: O.adadelta(),
    "adam": lambda: O.adam(S.cosine_decay(0.01, 10)),
    "adamw": lambda: O.adamw(0.01),
    "adamax": lambda: O.adamax(0.01),
    "lamb": lambda: O.lamb(0.01, weight_decay=0.01),
}  # (momentum and nadam share sgd-momentum's and adam's code paths and state structure)


def test_state_structure_unchanged_jit_and_vmap():
    params = make_params(jnp.float32)
    grads = jax.tree.map(lambda g: g[0], make_grads(jnp.float32, steps=1))
    sets = [make_params(jnp.float32, seed) for seed in range(3)]
    g_sets = [jax.tree.map(lambda x, k=k: (k + 1.0) * x, p) for k, p in enumerate(sets)]
    stack = lambda ts: jax.tree.map(lambda *xs: jnp.stack(xs), *ts)  # noqa: E731
    spec = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)  # noqa: E731
    for name, make in ALL.items():
        opt = make()
        update = jax.jit(opt.update)
        s0 = opt.init(params)
        u, s1 = update(grads, s0, params)
        assert jax.tree.structure(s1) == jax.tree.structure(s0), name
        assert spec(s1) == spec(s0), name
        assert spec(u) == spec(params), name
        # vmap over three parameter sets equals three separate (jitted) runs
        vu, vs = jax.jit(jax.vmap(opt.update))(stack(g_sets), jax.vmap(opt.init)(stack(sets)),
                                               stack(sets))
        singles = [update(g, opt.init(p), p) for g, p in zip(g_sets, sets, strict=True)]
        # 1e-5: vmapped and single programs fuse differently; centered RMSprop's nu - mu**2
        # cancels, which turns an ulp of difference into a few 1e-6.
        assert_trees_close(vu, stack([u for u, _ in singles]), 1e-5, f"{name} vmap", scaled=True)
        assert_trees_close(vs, stack([s for _, s in singles]), 1e-5, f"{name} vmap", scaled=True)


@pytest.mark.parametrize("make", [ALL["adam"], ALL["rmsprop_centered"], ALL["adadelta"]])
def test_jitted_init_and_step_with_donated_buffers(make):
    """init returns a separate buffer per state field, so donating params and state works."""
    opt = make()
    grads = jax.tree.map(lambda g: g[0], make_grads(jnp.float32, steps=1))

    @jax.jit
    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return O.apply_updates(p, u), s

    step = jax.jit(step, donate_argnums=(0, 1))
    p = make_params(jnp.float32)
    s = jax.jit(opt.init)(p)
    for _ in range(2):
        p, s = step(p, s, grads)
    jax.block_until_ready((p, s))


def test_init_allocates_separate_buffers():
    p = {"w": jnp.ones(4)}
    s = O.adam(0.1).init(p)[0]
    assert s.mu["w"].unsafe_buffer_pointer() != s.nu["w"].unsafe_buffer_pointer()


# --------------------------------------------------------------------------- convergence

_A = jnp.array([1.0, 10.0])


def bowl(w):
    return 0.5 * jnp.sum(_A * w["x"] ** 2)


def rosenbrock(w):
    x, y = w["x"][0], w["x"][1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


CONVERGE = {  # name: (optimizer for the bowl, optimizer for Rosenbrock, steps)
    "sgd": (lambda: O.sgd(0.1), lambda: O.sgd(1.5e-3), 5000),
    "momentum": (lambda: O.momentum(0.05, 0.9), lambda: O.momentum(1e-3, 0.9), 5000),
    "momentum_notes": (lambda: O.momentum(0.05, 0.9, form="notes"),
                       lambda: O.momentum(1e-3, 0.9, form="notes"), 5000),
    "nesterov": (lambda: O.nesterov(0.05, 0.9), lambda: O.nesterov(1e-3, 0.9), 5000),
    "adagrad": (lambda: O.adagrad(1.0), lambda: O.adagrad(0.5), 5000),
    "rmsprop": (lambda: O.rmsprop(S.exponential_decay(0.1, 100, 0.5)),
                lambda: O.rmsprop(S.exponential_decay(0.01, 300, 0.5)), 5000),
    "rmsprop_centered": (lambda: O.rmsprop(S.exponential_decay(0.1, 100, 0.5), centered=True),
                         lambda: O.rmsprop(S.exponential_decay(0.01, 300, 0.5), centered=True),
                         5000),
    "adadelta": (lambda: O.adadelta(0.01, 0.9, 1e-2),
                 lambda: O.adadelta(S.exponential_decay(0.03, 1000, 0.5), 0.9, 1e-3), 10000),
    "adam": (lambda: O.adam(0.1), lambda: O.adam(0.02), 5000),
    "adamw": (lambda: O.adamw(0.1, weight_decay=0.0), lambda: O.adamw(0.02, weight_decay=0.0),
              5000),
    "adamax": (lambda: O.adamax(0.1), lambda: O.adamax(0.02), 5000),
    "nadam": (lambda: O.nadam(0.1), lambda: O.nadam(0.01), 5000),
    "lamb": (lambda: O.lamb(S.exponential_decay(0.1, 300, 0.5)),
             lambda: O.lamb(S.exponential_decay(0.02, 1000, 0.5)), 5000),
}


def _minimize(opt, f, w, steps):
    def body(carry, _):
        w, s = carry
        u, s = opt.update(jax.grad(f)(w), s, w)
        return (O.apply_updates(w, u), s), None

    return jax.lax.scan(body, (w, opt.init(w)), None, length=steps)[0][0]


@pytest.mark.parametrize("name", list(CONVERGE))
def test_converges_on_bowl_and_rosenbrock(name):
    make_bowl, make_rosen, steps = CONVERGE[name]

    @jax.jit
    def both():
        wb = _minimize(make_bowl(), bowl, {"x": jnp.array([3.0, -2.0])}, 2000)
        wr = _minimize(make_rosen(), rosenbrock, {"x": jnp.array([-1.2, 1.0])}, steps)
        return bowl(wb), rosenbrock(wr), wr["x"]

    loss_bowl, loss_rosen, w = both()
    assert loss_bowl < 1e-8 * bowl({"x": jnp.array([3.0, -2.0])}), (name, loss_bowl)
    assert loss_rosen < 1e-3, (name, loss_rosen)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=0.1)


# --------------------------------------------------------------------------- review fixes


def _complex_tree(rng):
    def c(*shape):
        return jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), jnp.complex64)

    return {"w": c(3, 2), "b": c(4), "s": c()}


COMPLEX = {  # optimizers whose second moments / norms need |g|**2 = (conj(g) * g).real
    "adam": lambda: (O.adam(0.01, eps_root=1e-8), optax.adam(0.01, eps_root=1e-8)),
    "nadam": lambda: (O.nadam(0.01), optax.nadam(0.01)),
    "adamw": lambda: (O.adamw(0.01, weight_decay=0.1), optax.adamw(0.01, weight_decay=0.1)),
    "lamb": lambda: (O.lamb(0.01, weight_decay=0.01), optax.lamb(0.01, weight_decay=0.01)),
    "rmsprop": lambda: (O.rmsprop(0.01), optax.rmsprop(0.01)),
    "rmsprop_bias_correction": lambda: (O.rmsprop(0.01, bias_correction=True),
                                        optax.rmsprop(0.01, bias_correction=True)),
    "rmsprop_centered": lambda: (
        O.rmsprop(0.01, centered=True, initial_scale=0.1),
        optax.rmsprop(0.01, centered=True, initial_scale=0.1)),
    "rmsprop_centered_eps_outside": lambda: (
        O.rmsprop(0.01, 0.8, 1e-4, 0.5, centered=True, eps_in_sqrt=False),
        optax.rmsprop(0.01, 0.8, 1e-4, 0.5, centered=True, eps_in_sqrt=False)),
    "adagrad": lambda: (O.adagrad(0.1), optax.adagrad(0.1)),
    "adagrad_0": lambda: (O.adagrad(0.1, 0.0), optax.adagrad(0.1, 0.0)),
    "clip_by_global_norm": lambda: (
        O.chain(O.clip_by_global_norm(1.0), O.sgd(0.1)),
        optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))),
}


@pytest.mark.parametrize("name", list(COMPLEX))
def test_complex_parameters_match_optax(name):
    """complex64 tree: the first update and 5 more, updates and parameters to rtol 1e-6 (atol
    1e-6 * max|.| per leaf). g**2 (complex) instead of |g|**2 gives relative errors of
    order 1 here."""
    rng = np.random.default_rng(7)
    params = _complex_tree(rng)
    grads = [jax.tree.map(lambda x: 3 * x, _complex_tree(rng)) for _ in range(6)]
    ours, ref = COMPLEX[name]()
    uo_step, ur_step = jax.jit(ours.update), jax.jit(ref.update)
    so, sr, po, pr = ours.init(params), ref.init(params), params, params
    for i, g in enumerate(grads):
        uo, so = uo_step(g, so, po)
        ur, sr = ur_step(g, sr, pr)
        po, pr = O.apply_updates(po, uo), optax.apply_updates(pr, ur)
        assert_trees_close(uo, ur, 1e-6, f"{name} updates, step {i}", scaled=True)
        assert_trees_close(po, pr, 1e-6, f"{name} params, step {i}", scaled=True)
    assert jax.tree.leaves(uo)[0].dtype == jnp.complex64


def test_complex_second_moment_is_the_squared_modulus():
    """Hand-computed: g = 1j gives nu = (1 - b2) * |g|**2 = +(1 - b2) (g**2 would give
    -(1 - b2) and a NaN root), so Adam's first step is -lr * 1j / (1 + eps) (rtol 1e-5:
    float32's 1 - 0.999 is 6.7e-6 off, in optax too); Adagrad sums |g|**2 = 1 onto 0.1; the
    global norm of (3j, 4) is 5."""
    p = {"w": jnp.array([1.0 + 1.0j], jnp.complex64)}
    g = {"w": jnp.array([1.0j], jnp.complex64)}
    u, s = O.adam(0.1).update(g, O.adam(0.1).init(p), p)
    np.testing.assert_allclose(s[0].nu["w"], [0.001 + 0j], rtol=1e-6)
    np.testing.assert_allclose(u["w"], [-0.1j / (1 + 1e-8)], rtol=1e-5)
    u, s = O.adagrad(0.1).update(g, O.adagrad(0.1).init(p), p)
    np.testing.assert_allclose(s[0].sum_of_squares["w"], [1.1 + 0j], rtol=1e-6)
    np.testing.assert_allclose(u["w"], [-0.1j / np.sqrt(1.1 + 1e-7)], rtol=1e-6)
    u, _ = O.clip_by_global_norm(1.0).update(
        {"a": jnp.array([3j], jnp.complex64), "b": jnp.array([4.0 + 0j], jnp.complex64)},
        O.EmptyState())
    np.testing.assert_allclose(u["a"], [0.6j], rtol=1e-6)
    np.testing.assert_allclose(u["b"], [0.8], rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: O.sgd(float("inf")),
    lambda: O.adagrad(0.1, eps=float("inf")),
    lambda: O.adagrad(0.1, initial_accumulator_value=jnp.array(np.inf)),
    lambda: O.adamw(0.1, weight_decay=float("inf")),
    lambda: O.clip_by_global_norm(float("inf")),
    lambda: O.scale(float("-inf")),
    lambda: O.set_learning_rate(O.sgd(0.1).init({"w": jnp.ones(2)}), float("inf")),
], ids=["sgd", "adagrad-eps", "adagrad-acc", "adamw-wd", "clip", "scale",
        "set_learning_rate"])
def test_infinite_hyperparameters_rejected(make):
    """Every interval is open at infinity: "(0, inf)" must not accept inf."""
    with pytest.raises(ValueError, match=r"must be in .*inf\), got .*inf"):
        make()


def test_complex_and_bool_arrays_are_not_real_scalars():
    for bad in (np.array(0.1 + 1j), np.array(0.1 + 0j), jnp.array(0.1 + 0j), np.complex64(0.1),
                np.array(True), jnp.array(True), np.bool_(True)):
        with pytest.raises(TypeError, match="sgd: learning_rate must be a real scalar"):
            O.sgd(bad)
    with pytest.raises(TypeError, match="adam: b1 must be a real scalar"):
        O.adam(0.1, b1=np.array(0.9 + 0j))
    O.sgd(jnp.array(0.1, jnp.bfloat16))  # a 0-d bfloat16 array is a real scalar


@pytest.mark.parametrize("fn,kwargs,arg", [
    (O.adam, dict(eps_root=-1.0), "eps_root"),
    (O.nadam, dict(eps_root=-1.0), "eps_root"),
    (O.adamw, dict(eps_root=-1.0), "eps_root"),
    (O.lamb, dict(eps_root=-1.0), "eps_root"),
    (O.rmsprop, dict(initial_scale=-1.0), "initial_scale"),
    (O.rmsprop, dict(initial_scale=-1.0, centered=True), "initial_scale"),
], ids=lambda x: x.__name__ if callable(x) else None)
def test_errors_name_the_function_called(fn, kwargs, arg):
    with pytest.raises(ValueError) as err:
        fn(0.1, **kwargs)
    assert str(err.value).startswith(f"{fn.__name__}: {arg} must be in [0, inf), got -1.0")


BOOL_FLAGS = [
    (O.sgd, (0.1, 0.9), "nesterov"),
    (O.trace, (0.9,), "nesterov"),
    (O.scale_by_learning_rate, (0.1,), "flip_sign"),
    (O.scale_by_rss, (), "eps_in_sqrt"),
    (O.scale_by_rms, (), "eps_in_sqrt"),
    (O.scale_by_rms, (), "bias_correction"),
    (O.scale_by_stddev, (), "eps_in_sqrt"),
    (O.scale_by_stddev, (), "bias_correction"),
    (O.scale_by_adam, (), "bias_correction"),
    (O.scale_by_adam, (), "nesterov"),
    (O.adagrad, (0.1,), "eps_in_sqrt"),
    (O.rmsprop, (0.1,), "eps_in_sqrt"),
    (O.rmsprop, (0.1,), "centered"),
    (O.rmsprop, (0.1,), "bias_correction"),
    (O.rmsprop, (0.1, 0.9, 1e-8, 0.0), "nesterov"),
    (O.adam, (0.1,), "bias_correction"),
    (O.adam, (0.1,), "nesterov"),
    (O.nadam, (0.1,), "bias_correction"),
    (O.adamw, (0.1,), "bias_correction"),
    (O.adamw, (0.1,), "nesterov"),
]


@pytest.mark.parametrize("fn,args,flag", BOOL_FLAGS,
                         ids=[f"{f.__name__}-{a}" for f, _, a in BOOL_FLAGS])
def test_bool_flags_must_be_bools(fn, args, flag):
    for bad in ("yes", "no", 1, 0, None):
        with pytest.raises(TypeError, match=f"{fn.__name__}: {flag} must be a bool, got"):
            fn(*args, **{flag: bad})
    fn(*args, **{flag: np.bool_(False)})  # NumPy bools are bools


def test_scale_step_size_and_masks_are_checked():
    p = {"w": jnp.ones(2), "b": jnp.ones(3)}
    with pytest.raises(TypeError, match="scale: step_size must be a real scalar, got 'a'"):
        O.scale("a")
    for make, fn in ((lambda m: O.adamw(0.1, mask=m), "adamw"),
                     (lambda m: O.lamb(0.1, weight_decay=0.01, mask=m), "lamb"),
                     (lambda m: O.add_decayed_weights(0.1, m), "add_decayed_weights")):
        for bad in (123, "w", {"w": 1, "b": True}, {"w": jnp.ones(2, bool), "b": True}):
            with pytest.raises(TypeError, match=f"{fn}: mask must be None, a callable, or a "
                                                "pytree whose leaves are bools"):
                make(bad)
        # a callable mask is checked on its result, at update time
        opt = make(lambda params: jax.tree.map(lambda x: 1, params))
        with pytest.raises(TypeError, match=rf"{fn}: mask\(params\) must be"):
            opt.update(p, opt.init(p), p)
        for good in ({"w": True, "b": np.bool_(False)}, {"w": jnp.array(True), "b": False},
                     True, lambda params: {"w": True, "b": False}):
            opt = make(good)
            opt.update(p, opt.init(p), p)


def test_python_float_leaves_match_optax():
    """A Python float leaf in params and gradients, as optax accepts it: 3 steps, rtol 1e-6
    (optax computes that leaf in float64 Python arithmetic, ours in float32)."""
    params = {"w": 1.5, "v": jnp.linspace(-1.0, 1.0, 3)}
    grads = [{"w": 0.3 * (k + 1), "v": jnp.full(3, 0.2 * (k - 1))} for k in range(3)]
    for ours, ref in ((O.sgd(0.1), optax.sgd(0.1)),
                      (O.sgd(0.1, 0.9), optax.sgd(0.1, 0.9)),
                      (O.momentum(0.1, 0.9), optax.sgd(0.1, 0.9)),
                      (O.adam(0.1), optax.adam(0.1))):
        so, sr, po, pr = ours.init(params), ref.init(params), params, params
        for g in grads:
            uo, so = ours.update(g, so, po)
            ur, sr = ref.update(g, sr, pr)
            po, pr = O.apply_updates(po, uo), optax.apply_updates(pr, ur)
            for a, b in zip(jax.tree.leaves((uo, po)), jax.tree.leaves((ur, pr)), strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    # the other blocks that read a leaf's dtype (optax's fail on a Python float): by hand
    for block, expected in ((O.scale_by_schedule(lambda c: 0.5), 0.5 * 0.3),
                            (O.clip_by_global_norm(0.1), 0.1),
                            (O.scale_by_trust_ratio(), 0.3 * 1.0 / 0.3),
                            (O.sgd(S.linear(0.1, 0.0, 5)), -0.1 * 0.3)):
        u, _ = block.update({"w": 0.3}, block.init({"w": 1.0}), {"w": 1.0})
        np.testing.assert_allclose(float(u["w"]), expected, rtol=1e-6)


def test_foreign_states_raise_a_named_type_error():
    """A state of another optimizer (optax's, or ours of another kind) fails with a TypeError
    naming the function called and the entry, eagerly and at trace time under jit; the
    states the checks must accept still work."""
    p = {"w": jnp.ones(2)}
    g = {"w": jnp.full(2, 0.5)}
    cases = [
        (O.adam(0.1), optax.adam(0.1).init(p),
         "adam: state entry 1 is optax EmptyState, expected ScaleByLearningRateState; pass "
         "the state made by this optimizer's init"),
        (O.nadam(0.1), O.sgd(0.1).init(p),
         "nadam: state entry 0 is EmptyState, expected ScaleByAdamState"),
        (O.sgd(0.1, 0.9), optax.sgd(0.1, 0.9).init(p),
         "sgd: state entry 1 is optax EmptyState, expected ScaleByLearningRateState"),
        (O.rmsprop(0.1, centered=True), O.rmsprop(0.1).init(p),
         "rmsprop: state entry 0 is ScaleByRmsState, expected ScaleByRStdDevState"),
        (O.rmsprop(0.1, bias_correction=True), O.rmsprop(0.1).init(p),
         "rmsprop: state entry 0 is ScaleByRmsState, expected ScaleByRmsWithCountState"),
        (O.adamw(0.1, weight_decay=S.constant(0.1)), O.adamw(0.1).init(p),
         "adamw: state entry 1 is EmptyState, expected WeightDecaySchedule"),
        (O.chain(O.trace(0.9), O.scale(-0.1)), (O.EmptyState(), O.EmptyState()),
         "chain: state entry 0 is EmptyState, expected TraceState"),
        (O.chain(O.chain(O.trace(0.9)), O.scale(-0.1)), (O.EmptyState(), O.EmptyState()),
         "chain: state entry 0 is EmptyState, expected tuple"),
        (O.adam(0.1), None, "adam: state is NoneType, expected a tuple of 2 states"),
        (O.scale_by_adam(), O.EmptyState(),
         "scale_by_adam: state is EmptyState, expected ScaleByAdamState; pass the state made "
         "by this transformation's init"),
        (O.scale_by_learning_rate(0.1), optax.EmptyState(),
         "scale_by_learning_rate: state is optax EmptyState"),
    ]
    for opt, state, message in cases:
        for update in (opt.update, jax.jit(opt.update)):  # raised at trace time under jit
            with pytest.raises(TypeError) as err:
                update(g, state, p)
            assert str(err.value).startswith(message), str(err.value)
    # optax's like-named states (same fields) are accepted block by block; the checks pass
    # under jit, vmap and optax's wrappers (inject_hyperparams, chain, MultiSteps).
    p = {"w": jnp.linspace(-1.0, 1.0, 4)}
    g = {"w": jnp.linspace(0.5, -0.5, 4)}
    u, _ = O.scale_by_adam().update(g, optax.scale_by_adam().init(p))
    ur, _ = optax.scale_by_adam().update(g, optax.scale_by_adam().init(p))
    assert_trees_close(u, ur, 1e-6)
    u, _ = O.clip_by_global_norm(0.1).update(g, optax.EmptyState())
    assert_trees_close(u, optax.clip_by_global_norm(0.1).update(g, optax.EmptyState())[0], 1e-6)
    for ours, ref in (
        (optax.inject_hyperparams(O.adam)(learning_rate=0.1),
         optax.inject_hyperparams(optax.adam)(learning_rate=0.1)),
        (optax.chain(O.clip_by_global_norm(0.1), O.sgd(0.1, 0.9)),
         optax.chain(optax.clip_by_global_norm(0.1), optax.sgd(0.1, 0.9))),
        (optax.MultiSteps(O.rmsprop(0.1, centered=True), 2),
         optax.MultiSteps(optax.rmsprop(0.1, centered=True), 2)),
    ):
        so, sr = ours.init(p), ref.init(p)
        for _ in range(3):
            uo, so = jax.jit(ours.update)(g, so, p)
            ur, sr = jax.jit(ref.update)(g, sr, p)
        assert_trees_close(uo, ur, 1e-6)
    opt = O.adamw(0.1)
    stack = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), p)
    vu, _ = jax.vmap(opt.update)(stack, jax.vmap(opt.init)(stack), stack)
    assert vu["w"].shape == (2, 4)
