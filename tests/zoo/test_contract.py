"""Every registered model's public functions against the contract in docs/architecture.md.

The contract is read from the page itself (the ``def`` lines of its zoo/ code block), so the
page and the code cannot drift apart: positional parameters must match by name and order (the
documented ``x``, what the model reads or is conditioned on, may carry its own name: ``prime``,
``n``), documented keyword-only parameters must exist with the documented default, and any
further parameter must have a default (a model's own options).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from zoo import registry

ROOT = Path(__file__).resolve().parents[2]
_EMPTY = inspect.Parameter.empty


def _documented() -> dict[str, ast.arguments]:
    """``{name: arguments}`` of the ``def`` lines in the zoo/ section's code block."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## zoo/", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = {}
    for line in block.splitlines():
        if not line.startswith("def "):
            continue
        head = line.split("#", 1)[0].rsplit("->", 1)[0].strip()
        fn = ast.parse(head + ": ...").body[0]
        out[fn.name] = fn.args
    return out


def _default(node):
    return _EMPTY if node is None else ast.literal_eval(node)


def contract_problems(fn, documented: ast.arguments) -> list[str]:
    """What in ``fn``'s signature breaks the documented one (empty when it keeps it)."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = {p.name: p for p in params if p.kind == p.KEYWORD_ONLY}
    want_pos = [a.arg for a in documented.args]
    problems = []
    have_pos = [p.name for p in positional[:len(want_pos)]]
    if len(have_pos) < len(want_pos) or any(h != w and w != "x"
                                             for h, w in zip(have_pos, want_pos, strict=True)):
        problems.append(f"positional parameters {[p.name for p in positional]}, "
                        f"documented {want_pos}")
    for p in positional[len(want_pos):]:
        if p.default is _EMPTY:
            problems.append(f"extra positional parameter {p.name!r} has no default")
    documented_kw = {a.arg: _default(d)
                     for a, d in zip(documented.kwonlyargs, documented.kw_defaults, strict=True)}
    for name, default in documented_kw.items():
        if name not in keyword:
            problems.append(f"no keyword-only parameter {name!r}")
        elif keyword[name].default is not default and keyword[name].default != default:
            problems.append(f"{name!r} defaults to {keyword[name].default!r}, documented "
                            f"{default!r}")
    for name, p in keyword.items():
        if name not in documented_kw and p.default is _EMPTY:
            problems.append(f"extra keyword-only parameter {name!r} has no default")
    return problems


CONTRACT = _documented()
MODULES = sorted({spec.module.__name__: spec.module for spec in registry.specs()}.items())
REQUIRED = ("init", "apply", "loss")   # for models trained by the standard driver


def test_the_page_documents_the_functions():
    assert set(CONTRACT) == {"config_for", "init", "init_state", "apply", "loss", "sample"}


@pytest.mark.parametrize("name, module", MODULES, ids=[n for n, _ in MODULES])
def test_model_functions_keep_the_documented_signatures(name, module):
    standard = any(s.module is module and s.driver == "standard" for s in registry.specs())
    checked = 0
    for fn_name, documented in CONTRACT.items():
        fn = getattr(module, fn_name, None)
        if fn is None:
            assert not (standard and fn_name in REQUIRED), f"{name} has no {fn_name}()"
            continue
        assert contract_problems(fn, documented) == [], f"{name}.{fn_name}"
        checked += 1
    assert checked >= 2, name


def test_the_checker_fails_on_wrong_signatures():
    c = CONTRACT["apply"]

    def swapped(params, cfg, x, *, key=None, train=False, state=None):
        pass

    def no_state(params, x, cfg, *, key=None, train=False):
        pass

    def wrong_default(params, x, cfg, *, key=None, train=True, state=None):
        pass

    def required_extra(params, x, cfg, *, key=None, train=False, state=None, y_in):
        pass

    def required_positional(params, x, cfg, extra, *, key=None, train=False, state=None):
        pass

    def fine(params, inputs, cfg, more=0, *, key=None, train=False, state=None, extra=1):
        pass

    assert contract_problems(swapped, c)
    assert contract_problems(no_state, c) == ["no keyword-only parameter 'state'"]
    assert contract_problems(wrong_default, c) == [
        "'train' defaults to True, documented False"]
    assert contract_problems(required_extra, c) == [
        "extra keyword-only parameter 'y_in' has no default"]
    assert contract_problems(required_positional, c) == [
        "extra positional parameter 'extra' has no default"]
    assert contract_problems(fine, c) == []
    assert contract_problems(fine, CONTRACT["init"])   # (key, cfg) are named as documented


def test_standard_models_declare_their_inputs():
    from zoo.data_info import Inputs

    for spec in registry.specs():
        if spec.driver == "standard":
            assert isinstance(getattr(spec.module, "INPUTS", None), Inputs), spec.name
