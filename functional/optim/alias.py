"""The optimizers, each a ``chain`` of building blocks from ``transform`` (optax's
``alias.py`` is the model): sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, nadam,
adamw, adamax, lamb.

An optimizer checks only the arguments no block owns (``form``, ``centered``); every other
argument is checked by the block it is passed to, and the error names the optimizer.
"""

from __future__ import annotations

from functional import _validate
from functional.optim.base import GradientTransformation, ScalarOrSchedule, chain, identity
from functional.optim.transform import (
    add_decayed_weights,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_learning_rate,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
    scale_by_trust_ratio,
    trace,
)


def _trace(momentum, nesterov) -> GradientTransformation:
    """``trace(momentum, nesterov)``, whose errors call its ``decay`` by the optimizers' name
    for it, ``momentum``."""
    with _validate.renamed(decay="momentum"):
        return trace(momentum, nesterov)


def _optional_trace(momentum, nesterov) -> GradientTransformation:
    """``sgd``'s and ``rmsprop``'s momentum: ``_trace``, or ``identity()`` when momentum is
    None (then no block owns ``nesterov``, so it is checked here)."""
    if momentum is None:
        _validate.boolean(_validate.caller(), "nesterov", nesterov)
        return identity()
    return _trace(momentum, nesterov)


@_validate.names_errors
def sgd(
    learning_rate: ScalarOrSchedule, momentum: float | None = None, nesterov: bool = False
) -> GradientTransformation:
    """Stochastic gradient descent: w -= lr * g (with optional optax-form momentum).

    Args:
      learning_rate: positive float or schedule.
      momentum: None for plain SGD, else a coefficient in [0, 1) (see ``momentum``).
      nesterov: Nesterov momentum (see ``nesterov``).

    Returns:
      ``chain(trace or identity, scale_by_learning_rate)``; states as in ``optax.sgd`` plus
      the rate.
    """
    return chain(_optional_trace(momentum, nesterov), scale_by_learning_rate(learning_rate))


def _momentum(learning_rate, momentum, form, nesterov):
    """``momentum`` and ``nesterov``: the trace before or after the learning rate."""
    _validate.one_of(_validate.caller(), "form", form, ("optax", "notes"))
    if form == "optax":
        return chain(_trace(momentum, nesterov), scale_by_learning_rate(learning_rate))
    return chain(scale_by_learning_rate(learning_rate), _trace(momentum, nesterov))


@_validate.names_errors
def momentum(
    learning_rate: ScalarOrSchedule, momentum: float = 0.9, *, form: str = "optax"
) -> GradientTransformation:
    """Heavy-ball momentum (Polyak 1964).

    ``form='optax'`` (optax, PyTorch): v = mu*v + g;  w -= lr*v.
    ``form='notes'`` (seed 004 section 4.5, cs231n ``sgd_momentum``): v = mu*v - lr*g;  w += v.
    With a constant rate the two give the same iterates (v_notes = -lr * v_optax); with a
    schedule the notes' form keeps old gradients at the rate they were taken with.

    Args:
      learning_rate: positive float or schedule.
      momentum: coefficient mu in [0, 1).
      form: 'optax' or 'notes'.

    Returns:
      'optax': ``chain(trace, scale_by_learning_rate)`` (= ``optax.sgd(lr, momentum)``);
      'notes': ``chain(scale_by_learning_rate, trace)``, whose trace is the velocity v.
    """
    return _momentum(learning_rate, momentum, form, nesterov=False)


@_validate.names_errors
def nesterov(
    learning_rate: ScalarOrSchedule, momentum: float = 0.9, *, form: str = "optax"
) -> GradientTransformation:
    """Nesterov momentum in its gradient-at-the-current-point rewriting (Sutskever et al. 2013).

    ``form='optax'`` (optax, PyTorch): v = mu*v + g;  w -= lr * (g + mu*v).
    ``form='notes'`` (cs231n, the notes' velocity convention): v' = mu*v - lr*g;
    w += -mu*v + (1 + mu)*v'  (= -lr*g + mu*v'). Same iterates for a constant rate.

    Args:
      learning_rate: positive float or schedule.
      momentum: coefficient mu in [0, 1).
      form: 'optax' or 'notes'.

    Returns:
      The chain as in ``momentum`` with a Nesterov trace.
    """
    return _momentum(learning_rate, momentum, form, nesterov=True)


@_validate.names_errors
def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """Adagrad (Duchi et al. 2011): s += g**2;  w -= lr * g / sqrt(s + eps).

    Defaults are optax's/TF's (accumulator starts at 0.1, eps inside the root). PyTorch's
    Adagrad is ``initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False``.

    Returns:
      ``chain(scale_by_rss, scale_by_learning_rate)``.
    """
    return chain(
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    )


@_validate.names_errors
def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    *,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSprop (Tieleman & Hinton 2012; centered: Graves 2013).

    nu = decay*nu + (1-decay)*g**2;  w -= lr * g / sqrt(nu + eps)   (eps_in_sqrt=True), or
    w -= lr * g / (sqrt(nu) + eps)  (eps_in_sqrt=False: seed 004 section 4.6 and PyTorch).
    The notes' version is ``rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False)``.
    ``centered`` divides by sqrt(nu - |mu|**2 + eps) instead; ``momentum`` adds a trace after
    the learning rate, as optax does.

    Returns:
      ``chain(scale_by_rms or scale_by_stddev, scale_by_learning_rate, trace or identity)``.
    """
    _validate.boolean(_validate.caller(), "centered", centered)
    block = scale_by_stddev if centered else scale_by_rms
    return chain(
        block(decay, eps, initial_scale, eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction),
        scale_by_learning_rate(learning_rate),
        _optional_trace(momentum, nesterov),
    )


@_validate.names_errors
def adadelta(
    learning_rate: ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
) -> GradientTransformation:
    """Adadelta (Zeiler 2012); the paper has no learning rate (1.0, PyTorch's default).

    Returns:
      ``chain(add_decayed_weights, scale_by_adadelta, scale_by_learning_rate)``.
    """
    return chain(
        add_decayed_weights(weight_decay),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(learning_rate),
    )


@_validate.names_errors
def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    bias_correction: bool = True,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015): w -= lr * m_hat / (sqrt(v_hat) + eps); see ``scale_by_adam``.

    The notes' Adam (seed 004 section 4.7, defaults 1e-3, 0.9, 0.999, 1e-8) omits the bias
    correction: ``adam(1e-3, bias_correction=False)``.

    Returns:
      ``chain(scale_by_adam, scale_by_learning_rate)``.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, bias_correction=bias_correction, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


@_validate.names_errors
def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    bias_correction: bool = True,
) -> GradientTransformation:
    """Nadam (Dozat 2016): Adam with a Nesterov look-ahead first moment (= optax.nadam).

    Returns:
      ``adam(..., nesterov=True)``: ``chain(scale_by_adam, scale_by_learning_rate)``.
    """
    return adam(learning_rate, b1, b2, eps, eps_root, bias_correction=bias_correction,
                nesterov=True)


@_validate.names_errors
def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask=None,
    *,
    bias_correction: bool = True,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter 2019): w -= lr * (adam_direction + weight_decay * w).

    The decay is added after Adam's scaling, so it is not divided by sqrt(v) (decoupled), and
    it is multiplied by the learning rate (optax's and PyTorch's convention).

    Returns:
      ``chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate)``; update needs
      params.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, bias_correction=bias_correction, nesterov=nesterov),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@_validate.names_errors
def adamax(
    learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """Adamax (Kingma & Ba 2015, section 7.1); see ``scale_by_adamax``.

    Returns:
      ``chain(scale_by_adamax, scale_by_learning_rate)``.
    """
    return chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


@_validate.names_errors
def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask=None,
) -> GradientTransformation:
    """LAMB (You et al. 2020): Adam direction plus decay, rescaled per leaf by ||w|| / ||u||.

    Returns:
      ``chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio,
      scale_by_learning_rate)``; update needs params.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )
