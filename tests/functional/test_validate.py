"""functional._validate: the argument checks shared by functional.optim and
functional.schedules, and the rule that each argument is checked once, by the block that owns
it, with the error naming the function the user called."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional import _validate as V
from functional import optim as O
from functional import schedules as S


def test_checks_accept_and_reject_with_named_messages():
    """Each checker passes good values (and traced ones) and raises the documented message."""
    V.real("f", "x", -2.5)
    V.positive("f", "x", np.float32(1e-30))
    V.nonnegative("f", "x", jnp.array(0.0))
    V.fraction("f", "x", 0.0)
    V.integer("f", "n", np.int64(3), low=3)
    V.boolean("f", "b", np.bool_(False))
    V.one_of("f", "form", "notes", ("optax", "notes"))
    V.function("f", "g", len)
    V.mask_tree("f", "mask", {"a": True, "b": jnp.array(False)})
    jax.jit(lambda x: V.positive("f", "x", x) or x)(-1.0)  # traced: not checkable, passes
    cases = [
        (lambda: V.real("f", "x", float("nan")), ValueError,
         "f: x must be in (-inf, inf), got nan"),
        (lambda: V.real("f", "x", 2.0, low=0.0, high=1.0), ValueError,
         "f: x must be in [0, 1], got 2.0"),
        (lambda: V.positive("f", "x", 0), ValueError, "f: x must be in (0, inf), got 0"),
        (lambda: V.nonnegative("f", "x", -1e-9), ValueError,
         "f: x must be in [0, inf), got -1e-09"),
        (lambda: V.fraction("f", "x", 1.0), ValueError, "f: x must be in [0, 1), got 1.0"),
        (lambda: V.real("f", "x", True), TypeError, "f: x must be a real scalar, got True"),
        (lambda: V.real("f", "x", np.ones(2), noun="real number"), TypeError,
         "f: x must be a real number, got array([1., 1.])"),
        (lambda: V.integer("f", "n", 2.0, low=0), TypeError, "f: n must be an int, got 2.0"),
        (lambda: V.integer("f", "n", True, low=0), TypeError, "f: n must be an int, got True"),
        (lambda: V.integer("f", "n", 0, low=1), ValueError, "f: n must be an int >= 1, got 0"),
        (lambda: V.boolean("f", "b", 1), TypeError, "f: b must be a bool, got 1"),
        (lambda: V.one_of("f", "form", "torch", ("optax", "notes")), ValueError,
         "f: form must be 'optax' or 'notes', got 'torch'"),
        (lambda: V.function("f", "g", 3), TypeError, "f: g must be callable, got 3"),
        (lambda: V.mask_tree("f", "mask", {"a": 1}), TypeError,
         "f: mask must be None, a callable, or a pytree whose leaves are bools, got {'a': 1}"),
    ]
    for check, error, message in cases:
        with pytest.raises(error) as err:
            check()
        assert str(err.value) == message, (str(err.value), message)


@V.names_errors
def _inner(x):
    V.positive(V.caller(), "x", x)
    return V.caller()


@V.names_errors
def _outer(x):
    with V.renamed(x="size"):
        return _inner(x)


def test_names_errors_keeps_the_outermost_name_and_renamed_the_callers_argument():
    assert _inner(1.0) == "_inner" and _outer(1.0) == "_outer"
    with pytest.raises(ValueError, match=r"^_outer: size must be in \(0, inf\), got -1.0$"):
        _outer(-1.0)
    # after an error the name and the renaming are gone (the context is reset)
    with pytest.raises(ValueError, match=r"^_inner: x must be in"):
        _inner(-1.0)
    with pytest.raises(RuntimeError, match="caller: called outside"):
        V.caller()


def test_optimizer_errors_do_not_leak_into_the_next_call():
    """sgd renames trace's decay to momentum; after sgd raised, trace is itself again."""
    with pytest.raises(ValueError, match=r"^sgd: momentum must be in \[0, 1\), got 1.0$"):
        O.sgd(0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"^trace: decay must be in \[0, 1\), got 1.0$"):
        O.trace(1.0)
    with pytest.raises(ValueError, match=r"^adam: eps must be in"):
        O.adam(0.1, eps=0.0)
    with pytest.raises(ValueError, match=r"^scale_by_adam: eps must be in"):
        O.scale_by_adam(eps=0.0)


def test_nested_constructors_name_the_function_called():
    """A block built by an optimizer, or a schedule built by another, names the outer one."""
    for make, message in [
        (lambda: O.nadam(0.1, b2=1.0), "nadam: b2 must be in [0, 1), got 1.0"),
        (lambda: O.adagrad(0.1, initial_accumulator_value=-1.0),
         "adagrad: initial_accumulator_value must be in [0, inf), got -1.0"),
        (lambda: O.adadelta(rho=1.0), "adadelta: rho must be in [0, 1), got 1.0"),
        (lambda: O.nesterov(0.1, form="notes", momentum=-0.5),
         "nesterov: momentum must be in [0, 1), got -0.5"),
        (lambda: O.rmsprop(0.1, momentum=0.5, nesterov=1), "rmsprop: nesterov must be a bool"),
        (lambda: O.sgd(0.1, nesterov=1), "sgd: nesterov must be a bool, got 1"),
        (lambda: S.linear(0.1, 0.0, 0), "linear: transition_steps must be an int >= 1, got 0"),
        (lambda: S.warmup(S.constant(0.1), 2.5), "warmup: warmup_steps must be an int, got 2.5"),
    ]:
        with pytest.raises((ValueError, TypeError)) as err:
            make()
        assert str(err.value).startswith(message), (str(err.value), message)
    opt = O.lamb(0.1, weight_decay=0.1)  # an update-time error names the optimizer too
    with pytest.raises(ValueError, match="^lamb: update needs params, got params=None$"):
        opt.update({"w": jnp.ones(2)}, opt.init({"w": jnp.ones(2)}))


CHECKERS = ("real", "positive", "nonnegative", "fraction", "integer", "boolean", "one_of",
            "function", "mask_tree")

OPTIMIZERS = {
    "sgd": lambda: O.sgd(0.1),
    "sgd_momentum": lambda: O.sgd(0.1, 0.9, nesterov=True),
    "momentum": lambda: O.momentum(0.1, form="notes"),
    "nesterov": lambda: O.nesterov(0.1),
    "adagrad": lambda: O.adagrad(0.1),
    "rmsprop": lambda: O.rmsprop(0.1, momentum=0.9),
    "rmsprop_centered": lambda: O.rmsprop(0.1, centered=True, bias_correction=True),
    "adadelta": lambda: O.adadelta(weight_decay=0.1),
    "adam": lambda: O.adam(0.1),
    "nadam": lambda: O.nadam(0.1),
    "adamw": lambda: O.adamw(0.1, mask={"w": True}),
    "adamax": lambda: O.adamax(0.1),
    "lamb": lambda: O.lamb(0.1),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_argument_is_checked_once(name, monkeypatch):
    """Counting the checks made while an optimizer is built, by the name the error would give
    (a checker calling another counts once): no argument is checked twice, and every argument
    of the optimizer's signature is checked (mask and momentum only when not None)."""
    checked, depth = [], [0]

    def counting(check):
        def wrapper(fn, name, *args, **kwargs):
            if depth[0] == 0:
                checked.append(V._argument(name))
            depth[0] += 1
            try:
                return check(fn, name, *args, **kwargs)
            finally:
                depth[0] -= 1
        return wrapper

    for checker in CHECKERS:
        monkeypatch.setattr(V, checker, counting(getattr(V, checker)))
    OPTIMIZERS[name]()
    assert len(checked) == len(set(checked)), checked
    signature = inspect.signature(getattr(O, name.split("_")[0]))
    unchecked_none = {"mask", "momentum"}
    expected = {arg for arg, p in signature.parameters.items()
                if not (arg in unchecked_none and p.default is None)}
    if name in ("adamw", "sgd_momentum", "rmsprop"):
        expected |= {"mask"} if name == "adamw" else {"momentum"}
    assert expected <= set(checked), (expected - set(checked), checked)
