"""driftrank.experiments: cells, grids, results, reports, the CLI and the benchmarks.

- one cell: ``cell.py`` (what it is), ``runner.py`` (running it), ``slate_contract.py``
  (holding the agent to its slates), ``threads.py`` (what a unit of work sets for its
  process: torch threads, the allocator)
- a grid: ``grid_spec.py``, ``prepare.py``, ``launch.py`` (serial), ``launch_ray.py`` (Ray),
  ``grid_summary.py``, ``progress.py``, ``grid.py`` (``run_grid``)
- results: ``store.py`` (atomic files), ``results.py`` (reading back), ``report.py``
- pretraining diagnostics that read truth: ``truth_metrics.py``
- the CLI: ``cli.py`` + one ``cli_<command>.py`` per command, ``cli_args.py``, ``config_file.py``
- benchmarks: ``bench_*.py`` with one timer, ``timing.py``
"""
