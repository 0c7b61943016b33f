"""Parsing and printing shared by the ``driftrank`` commands.

One rule for every ``KEY=VALUE`` flag (``--world``, ``--config``, ``--set``): the value is JSON
if it parses (numbers, lists, ``true``/``false``, ``null``), else the text itself, so
``--set evaluator_ids=false`` is the boolean False and ``--config mode=activation`` a string.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def value(text: str):
    """A command-line value: JSON if it parses (numbers, lists, true/false), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_values(items: list[str] | None, flag: str) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; ``ValueError`` naming ``flag`` otherwise."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r} must look like KEY=VALUE, e.g. {flag} n_users=2000")
        out[key.strip()] = value(raw.strip())
    return out


def world_flags(items: list[str] | None) -> tuple[dict, dict]:
    """``--world KEY=VALUE`` (every scenario) and ``--world SCENARIO:KEY=VALUE``."""
    common: dict = {}
    per: dict = {}
    for item in items or []:
        head, sep, _ = item.partition("=")
        if ":" in head and sep:
            scenario, _, rest = item.partition(":")
            per.setdefault(scenario.strip(), {}).update(key_values([rest], "--world"))
        else:
            common.update(key_values([item], "--world"))
    return common, per


def one_world(items: list[str] | None, command: str) -> dict:
    """``--world`` settings of a command that runs one scenario (no ``SCENARIO:`` prefix)."""
    common, per = world_flags(items)
    if per:
        raise ValueError(f"--world {next(iter(per))}:KEY=VALUE is for grids; `{command}` has "
                         "one scenario, use --world KEY=VALUE")
    return common


def names(text: str, what: str) -> list[str]:
    """A comma-separated list of names; ``ValueError`` if it names none."""
    out = [n.strip() for n in text.split(",") if n.strip()]
    if not out:
        raise ValueError(f"--{what} {text!r} names no {what}; give a comma-separated list")
    return out


def number(kind: type, minimum: float, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse ``type=``: ``kind`` (int or float) at least (or above) ``minimum``."""
    what = "an integer" if kind is int else "a number"
    bound = f"{'>=' if inclusive else '>'} {minimum:g}"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (v >= minimum if inclusive else v > minimum):
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return v

    parse.__name__ = f"{kind.__name__} {bound}"  # argparse names it in its messages
    return parse


positive_int = number(int, 1)
nonneg_int = number(int, 0)
positive_float = number(float, 0, inclusive=False)


def table(rows: list[dict], floatfmt: str = "{:,.0f}") -> str:
    """Rows as a Markdown table (floats formatted with ``floatfmt``); the columns are every
    key in order of first appearance, and a row without a key shows ``-`` there."""
    if not rows:
        return "(no rows)"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[floatfmt.format(r[c]) if isinstance(r.get(c), float) else str(r.get(c, "-"))
              for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + " |"
            for row in cells]
    return "\n".join([line, sep, *body])


def cell_flags(p: argparse.ArgumentParser, grid: bool) -> None:
    """``--requests --batch --window --world --threads --cache-dir`` (a grid: no defaults, so
    a grid file's values stand unless a flag is given)."""
    d = None if grid else {"requests": 81_920, "batch": 256, "window": 2_048}
    p.add_argument("--requests", type=positive_int, default=d and d["requests"],
                   help="requests per cell; a multiple of --batch (default 81920)")
    p.add_argument("--batch", type=positive_int, default=d and d["batch"],
                   help="requests served per env step (default 256)")
    p.add_argument("--window", type=positive_int, default=d and d["window"],
                   help="requests per metrics window; a multiple of --batch (default 2048)")
    p.add_argument("--world", action="append", metavar="KEY=VALUE",
                   help="world setting on top of the scenario, e.g. --world n_users=2000 "
                        "--world abrupt_times=[20000]"
                        + ("; SCENARIO:KEY=VALUE sets it for one scenario" if grid else "")
                        + " (repeatable; see driftrank.envs.config.WorldConfig)")
    p.add_argument("--non-strict", action="store_true", default=None if grid else False,
                   help="serve slates with repeated candidates (the slot is left empty and "
                        "counted in empty_slots_per_request) instead of failing the cell")
    p.add_argument("--threads", type=positive_int, default=None if grid else 1,
                   help="torch threads per cell (default 1)")
    p.add_argument("--cache-dir", default=None if grid else ".driftrank_cache",
                   help="where agents keep pretrained checkpoints (default .driftrank_cache)")
