"""params.yaml -> typed dataclasses, once per stage.

Library code never reads params.yaml: a stage calls :func:`stage_config` with the dataclass its
pipeline module defines, and passes the result in. Unknown keys are an error, so a typo in
params.yaml fails loudly instead of being ignored. A numeric key states its allowed range once,
beside its field (:func:`param`); :func:`build` checks every value given against it, and turns
any ``ValueError`` of a dataclass's own checks into a :class:`ConfigError` naming the section, so
every bad value ends as one "params.yaml: <key>: ..." line and exit code 2 (:mod:`pipeline.core.cli`)
before a stage touches an output.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.tables import cpu_count


T = TypeVar("T")

PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """params.yaml does not match what a stage expects."""


def parse_yaml(text: str) -> Any:
    """YAML 1.2, as DVC reads and rewrites params.yaml (ruamel, DVC's own parser): an unquoted
    ``16:9`` is a string, not PyYAML's base-60 integer 969; ``off`` is a string, ``010`` is 10."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


# the top-level keys of params.yaml: one section per stage (shared/DESIGN.md) plus seed and variants
SECTIONS = ("seed", "variants", "phantoms", "ingest", "audit", "crop", "letterbox", "split", "train", "train_sr",
            "generate", "evaluate", "release", "reader_study")


def load_params(path: str | os.PathLike = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as DVC reads it; a top-level key that is no known section is an error (a typo)."""
    from ruamel.yaml.error import YAMLError

    with open(path, encoding="utf-8") as f:
        try:
            params = parse_yaml(f.read()) or {}
        except YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            what = getattr(e, "problem", None) or getattr(e, "context", None) or type(e).__name__
            raise ConfigError(f"not valid YAML: {what}" + (f" (line {mark.line + 1})" if mark else "")) from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; known: {list(SECTIONS)}")
    return params


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric param may take (each item of a list param): bounds inclusive
    (``ge``/``le``) or exclusive (``gt``/``lt``), ``None`` for no bound; ``length``: a list's item count."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    length: int | None = None

    def __contains__(self, x: float) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))  # NaN: never

    def __str__(self) -> str:
        lo = self.ge if self.ge is not None else self.gt
        hi = self.le if self.le is not None else self.lt
        if lo is not None and hi is not None:
            return f"{'[' if self.ge is not None else '('}{lo}, {hi}{']' if self.le is not None else ')'}"
        if lo is not None:
            return f"{'>=' if self.ge is not None else '>'} {lo}"
        if hi is not None:
            return f"{'<=' if self.le is not None else '<'} {hi}"
        return "any number"


def param(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
          ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
          length: int | None = None) -> Any:
    """A dataclass field for a params.yaml key, with the range :func:`build` holds its value to
    (for a list: each item, and ``length`` items): ``steps: int = param(800, ge=1)``."""
    return dataclasses.field(default=default, default_factory=factory,
                             metadata={"range": Range(ge=ge, gt=gt, le=le, lt=lt, length=length)})


def range_of(f: dataclasses.Field) -> Range | None:
    return f.metadata.get("range")


def check_range(value: Any, rng: Range, key: str) -> None:
    """ConfigError naming ``key`` and ``rng`` unless ``value`` (a number, a list of numbers, or
    something else such as ``null`` or ``auto``, which ranges do not concern) is inside it."""
    if isinstance(value, (list, tuple)):
        if rng.length is not None and len(value) != rng.length:
            raise ConfigError(f"{key}: expected {rng.length} numbers, got {len(value)}")
        for i, v in enumerate(value):
            check_range(v, dataclasses.replace(rng, length=None), f"{key}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value not in rng:
        raise ConfigError(f"{key}: {value!r} is out of range (allowed: {rng})")


def _named(where: str, message: str) -> str:
    """``message`` prefixed with ``where`` unless it names that key already."""
    if not where or message == where or message.startswith((where + ".", where + ":", where + " ")):
        return message
    return f"{where}: {message}"


def build(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursively, checking keys and simple types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: missing (required)")
            continue
        kwargs[name] = _coerce(hints[name], data[name], key)
        if range_of(f) is not None:
            check_range(kwargs[name], range_of(f), key)
    try:
        return cls(**kwargs)
    except ValueError as e:  # the dataclass's own checks (ConfigError included): one params message
        raise ConfigError(_named(where, str(e))) from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as e:  # try the next member
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(kt, k, where): _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def stage_config(section: str, cls: type[T], params: dict[str, Any] | None = None) -> T:
    """The typed config of one params.yaml section (``params`` defaults to params.yaml)."""
    params = load_params() if params is None else params
    if section not in params:
        raise ConfigError(f"params.yaml has no '{section}' section")
    return build(cls, params[section], section)


SEED_RANGE = Range(ge=0, lt=2**32)  # numpy's and torch's seeds


def seed(params: dict[str, Any] | None = None) -> int:
    params = load_params() if params is None else params
    value = params.get("seed")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"seed: expected an integer, got {value!r}")
    check_range(value, SEED_RANGE, "seed")
    return value


@dataclasses.dataclass(frozen=True)
class Variant:
    """One training geometry (params.yaml ``variants.<name>``)."""

    source: typing.Literal["full", "teeth"]
    aspect: typing.Literal["16:9", "square"]
    mode: typing.Literal["letterbox", "squash"]
    height: int = param(ge=1)
    width: int = param(ge=1)
    sr_scale: int = param(0, ge=0, le=8)   # super-resolution factor of the delivered images (0: none)

    def __post_init__(self) -> None:
        if self.sr_scale not in (0, 2, 4, 8):
            raise ConfigError(f"sr_scale must be 0 (off), 2, 4 or 8, got {self.sr_scale}")

    @property
    def delivered(self) -> tuple[int, int]:
        """(height, width) of the images the pipeline delivers: the GAN's times ``sr_scale``."""
        s = self.sr_scale or 1
        return self.height * s, self.width * s


def variants(params: dict[str, Any] | None = None) -> dict[str, Variant]:
    params = load_params() if params is None else params
    raw = params.get("variants") or {}
    return {name: build(Variant, spec, f"variants.{name}") for name, spec in raw.items()}


def variant(name: str, params: dict[str, Any] | None = None) -> Variant:
    all_variants = variants(params)
    if name not in all_variants:
        raise ConfigError(f"unknown variant '{name}'; params.yaml defines {sorted(all_variants)}")
    return all_variants[name]


def workers(requested: int | None = None) -> int:
    """Worker processes for CPU stages: ``requested`` if > 0, else $DENTSYNTH_WORKERS, else all cores.

    Not a param on purpose: the number of processes never changes an output, so it must not
    make DVC rerun a stage.
    """
    if requested and requested > 0:
        return requested
    env = os.environ.get("DENTSYNTH_WORKERS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError as e:
            raise ConfigError(f"DENTSYNTH_WORKERS must be an integer, got {env!r}") from e
        if n > 0:
            return n
    return cpu_count()


def resolve(path: str | os.PathLike, root: str | os.PathLike = ".") -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p
