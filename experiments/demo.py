"""``driftrank demo`` / ``make demo``: the main comparison on an embedded default grid.

The question driftrank exists for — does adapting at serving time pay, compared with
retraining? — on the two drifts that features do not reveal: ``taste-shift`` (users switch
taste; their behaviour profiles lag) and ``quality-drift`` (hidden item quality moves; counters
lag). The adaptive agents (retraining, DRN, LAST and the flagship LAST + ReLoop2; each part
of the flagship and the other agents are in ``driftrank study``) run beside the
frozen ranker (``static``) and the two oracles whose difference is the adaptation headroom:
``oracle`` knows the world now, ``stale-oracle`` knows it as it was at the start. Three seeds,
10,000 requests per cell with the drift at request 5,000, sized for a few minutes on a 2-core
laptop; cells run as Ray tasks (the same code runs on a cluster with ``driftrank grid
--address``). Pretrained models are built once per world config before the cells start;
finished cells are kept, so re-running resumes. Prints the summary, the headroom (with each
agent's gain over ``static`` as a share of it) and where the report is.
"""

from __future__ import annotations

from pathlib import Path

PRETRAIN = dict(n_requests=10_000, evaluator_epochs=3, imitation_epochs=2, pg_steps=100,
                eval_requests=500)
MODEL = {"pretrain_config": PRETRAIN}

DEMO_GRID = dict(
    scenarios=["taste-shift", "quality-drift"],
    agents=[
        {"name": "random", "config": {}},
        {"name": "oracle", "config": {}},
        {"name": "stale-oracle", "config": {}},
        {"name": "static", "config": MODEL},
        {"name": "incremental", "config": {**MODEL, "period": 2000}},
        {"name": "drn", "config": {"period": 1000, "warm_start_requests": 5000}},
        {"name": "last", "config": MODEL},
        {"name": "last+reloop2", "config": MODEL},
    ],
    seeds=[0, 1, 2],
    requests=10_000,
    batch=200,
    window=1_000,
    world={"n_users": 5_000, "max_steps": 100_000},
    scenario_world={"taste-shift": {"abrupt_times": [5_000]},
                    "quality-drift": {"quality_shock_times": [5_000]}},
)


def run_demo(out: str | Path = "runs/demo", launcher: str = "ray", progress: bool = True,
             cache_dir: str | Path = ".driftrank_cache", quick: bool = False) -> int:
    from .grid import GridSpec, run_grid
    from .report import write_report

    grid = dict(DEMO_GRID)
    if quick:  # a smoke-sized demo for tests and impatient people
        grid.update(seeds=[0], requests=2_000, window=400,
                    scenario_world={"taste-shift": {"abrupt_times": [1_000]},
                                    "quality-drift": {"quality_shock_times": [1_000]}})
        small = dict(n_requests=2_000, evaluator_epochs=1, imitation_epochs=1, pg_steps=10,
                     eval_requests=100)
        grid["agents"] = [
            {"name": a["name"], "config": {**a["config"], **(
                {"pretrain_config": small} if "pretrain_config" in a["config"] else {}),
                **({"warm_start_requests": 500} if a["name"] == "drn" else {})}}
            for a in DEMO_GRID["agents"]]
        grid["world"] = {"n_users": 500, "n_items": 400, "max_steps": 100_000}
    spec = GridSpec(**grid)
    cells = len(spec.scenarios) * len(spec.agents) * len(spec.seeds)
    print(f"driftrank demo: {cells} cells ({len(spec.agents)} agents x "
          f"{len(spec.scenarios)} scenarios x {len(spec.seeds)} seeds), "
          f"{spec.requests:,} requests each, launcher={launcher}; results in {out}/")
    summary = run_grid(spec, out, launcher=launcher, progress=progress, cache_dir=cache_dir)
    report = write_report(out)
    text = Path(report).read_text()
    for section in ("## Summary", "## Adaptation headroom"):
        print(_section(text, section), end="\n\n")
    print(f"full report: {report}")
    return 0 if not summary.failed else 1


def _section(markdown: str, heading: str) -> str:
    """The text of one ``## `` section of a Markdown report (empty if absent)."""
    start = markdown.find(heading + "\n")
    if start < 0:
        return ""
    end = markdown.find("\n## ", start + len(heading))
    return markdown[start:end if end > 0 else None].strip()
