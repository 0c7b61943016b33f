"""Agent config checked by name before the agent is built.

A config is keyword arguments of the agent's factory. Three checks, each naming the agent, the
key and what is allowed, so a typo or a wrong value fails in the driver in a second instead of
deep inside torch (or not at all):

1. the key is a parameter of the factory;
2. the value has the parameter's annotated type (``int``, ``float``, ``bool``, ``str``,
   ``dict``, ``list``/``tuple``, ``X | None``; an unannotated parameter takes its default's
   type); ``"abc"`` for an ``int`` is refused, ``2`` for a ``float`` is fine;
3. the value lies in the range the agent documents in ``config_ranges``
   (``">= 1"``, ``"> 0"``, ``"[0, 1]"``, ``"(0, 1]"``, ...).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,),
    "list": (list, tuple), "tuple": (list, tuple), "None": (type(None),),
}
_EXAMPLES = {"int": "an integer", "float": "a number", "bool": "true or false",
             "str": "a string", "dict": "a table", "list": "a list", "tuple": "a list",
             "None": "null"}


@dataclass(frozen=True)
class ConfigKey:
    """One config key of an agent: what ``driftrank agents NAME`` lists."""

    name: str
    annotation: str  # "" when neither annotated nor inferable from the default
    default: Any  # inspect.Parameter.empty when required
    allowed: str  # documented range, "" if none

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def _target(factory: Callable) -> Callable:
    return factory.__init__ if inspect.isclass(factory) else factory


def _annotation(param: inspect.Parameter) -> str:
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        default = param.default
        for name in ("bool", "int", "float", "str", "dict", "list", "tuple"):
            if type(default).__name__ == name:
                return name
        return ""
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def config_keys(factory: Callable) -> list[ConfigKey] | None:
    """The factory's config keys in signature order; ``None`` if it takes ``**kwargs``."""
    params = list(inspect.signature(_target(factory)).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    ranges = getattr(factory, "config_ranges", {}) or {}
    return [ConfigKey(p.name, _annotation(p), p.default, ranges.get(p.name, ""))
            for p in params if p.name not in ("self", "context")
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _type_error(value: Any, annotation: str) -> str | None:
    names = [t.strip() for t in annotation.split("|")]
    if any(n not in _TYPES for n in names):
        return None  # an annotation this check does not understand: trust the agent
    for n in names:
        if isinstance(value, bool) and n != "bool":
            continue  # True is an int to Python, never to a config
        if isinstance(value, _TYPES[n]):
            return None
    return " or ".join(_EXAMPLES[n] for n in names)


_RANGE = re.compile(r"^\s*(?:(>=|>|<=|<)\s*(\S+)|([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])]))\s*$")


def in_range(value: float, allowed: str) -> bool:
    """Whether ``value`` lies in ``allowed`` (``">= 1"``, ``"(0, 1]"``, ...)."""
    m = _RANGE.match(allowed)
    if not m:
        raise ValueError(f"range {allowed!r} must look like '>= 1', '> 0' or '[0, 1)'")
    if m.group(1):
        op, bound = m.group(1), float(m.group(2))
        return {">=": value >= bound, ">": value > bound, "<=": value <= bound,
                "<": value < bound}[op]
    lo, hi = float(m.group(4)), float(m.group(5))
    above = value >= lo if m.group(3) == "[" else value > lo
    below = value <= hi if m.group(6) == "]" else value < hi
    return above and below


def check_config(name: str, factory: Callable, config: dict) -> None:
    """Raise ``ValueError`` naming the agent, the key and what is allowed, for an unknown key,
    a value of the wrong type or a value outside the documented range."""
    keys = config_keys(factory)
    if keys is None:
        return
    by_name = {k.name: k for k in keys}
    bad = sorted(set(config) - set(by_name))
    if bad:
        raise ValueError(f"agent {name!r} got unknown config key(s) {bad}; valid keys: "
                         f"{sorted(by_name)} (see `driftrank agents {name}`)")
    for key, value in config.items():
        spec = by_name[key]
        default = "" if spec.required else f" (default {spec.default!r})"
        wanted = _type_error(value, spec.annotation) if spec.annotation else None
        if wanted:
            raise ValueError(f"agent {name!r}: config {key}={value!r} must be {wanted}"
                             f"{default}; see `driftrank agents {name}`")
        if spec.allowed and isinstance(value, int | float) and not isinstance(value, bool) \
                and not in_range(value, spec.allowed):
            raise ValueError(f"agent {name!r}: config {key}={value!r} is out of range; allowed "
                             f"{key} {spec.allowed}{default}")
