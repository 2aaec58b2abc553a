"""The one way a stage script starts: ``python -m stages.<name> [VARIANT]``.

:func:`run` reads params.yaml once, checks the argument count, calls the stage's
``main(params)`` or ``main(params, variant)`` and turns its result into the exit code:
0 done, 1 the stage ran and found a problem (``main`` returned 1 or a needed input is missing),
2 wrong usage or params.yaml (a :class:`ConfigError` names the key)."""
from __future__ import annotations

import sys
from typing import Any, Callable, NoReturn

from pipeline.core.config import ConfigError, load_params


def run(main: Callable[..., int | None], *, variant: bool = False, argv: list[str] | None = None) -> NoReturn:
    argv = sys.argv[1:] if argv is None else argv
    prog = f"python -m {main.__module__}" if main.__module__ != "__main__" else "python -m stages.<name>"
    if len(argv) != int(variant):
        print(f"usage: {prog}{' VARIANT' if variant else ''}", file=sys.stderr)
        sys.exit(2)
    try:
        params: dict[str, Any] = load_params()
        code = main(params, *argv)
    except ConfigError as e:
        print(f"params.yaml: {e}", file=sys.stderr)
        sys.exit(2)
    except FileNotFoundError as e:
        print(f"missing input: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(int(code or 0))
