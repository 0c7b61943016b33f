"""Reading a run folder back: every stored cell of its grid as one DataFrame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .grid_spec import GridSpec
from .runner import COLUMNS
from .store import CELLS, GRID_FILE, cell_path, finished_cells, read_grid_spec


def load_results(run_dir: str | Path, include_partial: bool = True) -> pd.DataFrame:
    """All stored cells of a run folder as one DataFrame (the runner's columns + ``node_id``).

    If the folder has a ``grid.json``, only cells of that grid are loaded (cells left by an
    earlier, different grid in the same folder are ignored). Rows are sorted by scenario,
    agent label, seed and window. Raises ``FileNotFoundError`` if ``run_dir`` holds no run.
    ``include_partial=False`` raises ``ValueError`` when some cells of the grid are missing.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist")
    spec = read_grid_spec(run_dir)
    done = finished_cells(run_dir)
    if spec is None and not done:
        raise FileNotFoundError(
            f"{str(run_dir)!r} is not a driftrank run folder (no {GRID_FILE} and no "
            f"{CELLS}/*.parquet); run `driftrank grid --out {run_dir}` first")
    wanted = done
    if spec is not None:
        ids = [c.cell_id for c in GridSpec.from_dict(spec).cells()]
        missing = [i for i in ids if i not in done]
        if missing and not include_partial:
            raise ValueError(f"{len(missing)} of {len(ids)} cells have no results yet, e.g. "
                             f"{missing[0]!r}")
        wanted = [i for i in ids if i in done]
    frames = [pd.read_parquet(cell_path(run_dir, i)) for i in sorted(wanted)]
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "node_id"])
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["scenario", "label", "seed", "window"], kind="stable",
                          ignore_index=True)
