"""``driftrank agents [NAME]`` and ``driftrank scenarios``: what there is to run."""

from __future__ import annotations

import inspect


def cmd_scenarios(args) -> int:
    from ..envs import DESCRIPTIONS

    for name, text in DESCRIPTIONS.items():
        print(f"{name:<14} {text}")
    return 0


def _describe(name: str) -> str:
    from ..agents import available_agents, config_keys, find_factory

    factory = find_factory(name)
    doc = inspect.cleandoc(factory.__doc__ or "")  # its own, not a base class's
    lines = [f"{name}: {available_agents()[name].description}"]
    if doc and doc.splitlines()[0] != lines[0]:
        lines += ["", *doc.splitlines()]
    keys = config_keys(factory)
    lines.append("")
    if keys is None:
        lines.append("config: any keyword (the factory takes **kwargs)")
    elif not keys:
        lines.append("config: none")
    else:
        lines.append("config keys (driftrank run --config KEY=VALUE; grid files: config = {...}):")
        width = max(len(k.name) for k in keys)
        for k in keys:
            default = "required" if k.required else f"default {k.default!r}"
            allowed = f", allowed {k.allowed}" if k.allowed else ""
            kind = k.annotation or "any"
            lines.append(f"  {k.name:<{width}}  {kind}, {default}{allowed}")
    return "\n".join(lines)


def cmd_agents(args) -> int:
    from ..agents import available_agents

    if args.name:
        print(_describe(args.name))
        return 0
    agents = available_agents()
    width = max(len(n) for n in agents)
    for name, entry in agents.items():
        print(f"{name:<{width}}  {entry.description}")
    print("(config keys, defaults and allowed values of one agent: driftrank agents NAME)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("agents", help="list the agents (built-in and plugins); NAME: its config",
                       description="Without NAME: every agent with its one-line description. "
                                   "With NAME: that agent's description, its config keys, "
                                   "their defaults and allowed values.")
    p.add_argument("name", nargs="?", metavar="NAME", help="an agent to describe")
    p.set_defaults(func=cmd_agents)
    p = sub.add_parser("scenarios", help="list the named drift scenarios")
    p.set_defaults(func=cmd_scenarios)
