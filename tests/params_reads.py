"""What each DVC stage reads of params.yaml, derived from its code (tests/test_e2e.py runs this in a
project folder: ``python -m tests.params_reads STAGES_JSON OUT_JSON``).

Every stage's ``main(params[, variant])`` runs with the library calls it makes stubbed (recorded, not
run: the ``pipeline.*`` functions and modules in the stage module's namespace, but for config, cli and
layout). For each leaf key of params.yaml (every key of every section, nested ones included) another
value is planted, the first that every stage accepts (from the values params.yaml and the config
dataclasses' Literal types use, or the number moved a little); a stage reads the key when the
planted value changes what it passes to the library, or makes it fail. OUT_JSON: {"reads": {key:
[stage, ...]}, "planted": {key: value}}.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import io
import json
import re
import sys
import types
import typing
from unittest import mock

from pipeline.core import config

KEEP = {"pipeline.core.config", "pipeline.core.cli", "pipeline.core.layout"}   # config and paths: run for real


class Result(mock.MagicMock):
    def __repr__(self):
        return "<result>"


def leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix


def get(params, dotted):
    for part in dotted.split("."):
        params = params[part]
    return params


def put(params, dotted, value):
    out = copy.deepcopy(params)
    node = out
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return out


def strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


def literals(tp):
    """The strings a type annotation allows by name (Literal members, through Union/list/Optional)."""
    if typing.get_origin(tp) is typing.Literal:
        yield from (a for a in typing.get_args(tp) if isinstance(a, str))
    for arg in typing.get_args(tp):
        if arg is not tp and typing.get_origin(tp) is not typing.Literal:
            yield from literals(arg)


def code_vocabulary():
    """Every string a config dataclass of the imported pipeline modules names in a Literal type."""
    out = set()
    for name, mod in list(sys.modules.items()):
        if not name.startswith("pipeline.") or mod is None:
            continue
        for obj in list(vars(mod).values()):
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == name:
                try:
                    hints = typing.get_type_hints(obj)
                except Exception:  # noqa: BLE001 - an annotation it cannot resolve names no Literal
                    continue
                for tp in hints.values():
                    out.update(literals(tp))
    return out


def candidates(v, vocab):
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        return [c for c in (v + 1, v - 1, v * 2, v + 2) if c != v]   # v + 2: a 0 whose neighbours are out of range (sr_scale)
    if isinstance(v, float):
        return [v + 0.01, v * 1.1, v - 0.01, v * 0.9]
    if isinstance(v, str):
        return [s for s in vocab if s != v] + [v + "-planted"]
    if v is None:
        return [1.0, 1, "auto"]
    if isinstance(v, list):
        return [[c, *v[1:]] for c in candidates(v[0], vocab)] if v else [[s] for s in vocab]
    if isinstance(v, dict):
        return [{"planted": 1}]
    raise TypeError(f"no plant for {v!r}")


def run(module, arg, params):
    """(library calls made, exception raised) of ``module``'s main under ``params``."""
    mod = importlib.import_module(module)
    calls = []

    def stub(qual):
        def f(*a, **kw):
            calls.append(re.sub(r"0x[0-9a-f]+", "0x", f"{qual}{a!r}{sorted(kw.items())!r}"))
            return Result()
        return f

    class Proxy:
        def __init__(self, name):
            self._name = name

        def __getattr__(self, attr):
            return stub(f"{self._name}.{attr}")

    patches = {}
    for name, v in vars(mod).items():
        if isinstance(v, types.ModuleType) and v.__name__.startswith("pipeline.") and v.__name__ not in KEEP:
            patches[name] = Proxy(v.__name__)
        elif isinstance(v, types.FunctionType) and v.__module__.startswith("pipeline.") and v.__module__ not in KEEP:
            patches[name] = stub(f"{v.__module__}.{v.__qualname__}")
    error = None
    quiet = io.StringIO()
    with mock.patch.dict(mod.__dict__, patches), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        try:
            mod.main(copy.deepcopy(params), *([arg] if arg else []))
        except Exception as e:  # noqa: BLE001 - an error is part of what a stage does with its params
            error = type(e).__name__
    return tuple(calls), error


def main():
    stages = json.loads(sys.argv[1])          # stage name -> [module, argument or null]
    params = config.load_params("params.yaml")
    base = {s: run(m, a, params) for s, (m, a) in stages.items()}   # imports every stage's modules
    vocab = sorted(set(strings(params)) | set(params.get("variants", {})) | code_vocabulary())
    assert all(calls for calls, _ in base.values()), {s: r for s, r in base.items() if not r[0]}
    reads, planted = {}, {}
    for key in leaves(params):
        outcomes = None
        for value in candidates(get(params, key), vocab):
            got = {s: run(m, a, put(params, key, value)) for s, (m, a) in stages.items()}
            if outcomes is None or all(got[s][1] == base[s][1] for s in stages):
                outcomes, planted[key] = got, value
            if all(got[s][1] == base[s][1] for s in stages):   # a value every stage accepts
                break
        reads[key] = sorted(s for s in stages if outcomes[s] != base[s])
    with open(sys.argv[2], "w") as f:
        json.dump({"reads": reads, "planted": planted}, f)


if __name__ == "__main__":
    main()
