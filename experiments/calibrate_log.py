"""Reading an interaction log for calibration: MovieLens files or a CSV with named columns.

Every reader returns one tidy DataFrame, ``user``, ``item`` (integer ids), ``time`` (numbers,
ascending), ``click`` (0/1, only for logs of impressions), plus ``topic`` when the log or a
side file names each item's genre. Bad logs raise ``ValueError`` naming the file, the column and
the first bad row, and saying what to do. The log is never shipped or downloaded: the user points
at a file.

Two kinds of log
    *Impression logs* have a click column (0/1): every row is an item shown, clicked or not, so
    the log's click-through rate is known. *Interaction logs* (MovieLens ratings, plays,
    purchases) list only what users did; every row counts as a positive and there is no CTR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MOVIELENS_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
                    "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclass(frozen=True)
class LogColumns:
    """Column names of a CSV log. ``click`` (0/1 per shown item) or ``rating`` (interaction
    logs; the value is not used) may be absent: then every row is an interaction. ``topic``
    (the item's genre or category, any labels) is optional."""

    user: str = "user"
    item: str = "item"
    time: str = "timestamp"
    click: str | None = "click"
    rating: str | None = "rating"
    topic: str | None = "topic"


def read_log(log, format: str = "csv", columns: LogColumns | None = None,
             genres: str | Path | bool | None = None) -> tuple[pd.DataFrame, dict]:
    """Read ``log`` (a path, or a DataFrame for ``format="csv"``) into the tidy form.

    ``format``: ``"movielens"`` (``u.data``, tab-separated user item rating timestamp, or
    ``ratings.csv`` with userId,movieId,rating,timestamp) or ``"csv"`` (named columns, see
    :class:`LogColumns`). ``genres``: a MovieLens ``u.item`` or ``movies.csv`` giving item
    topics; ``None`` looks for one beside a MovieLens log, ``False`` ignores genres.

    Returns ``(frame, info)``; ``info`` says what was read (rows, kind, whether the rows had
    to be sorted by time, where topics came from).
    """
    if format not in ("movielens", "csv"):
        raise ValueError(f"format={format!r}: choose 'movielens' (u.data or ratings.csv) or "
                         "'csv' (a CSV with named columns)")
    name = "the log" if isinstance(log, pd.DataFrame) else repr(str(log))
    if isinstance(log, pd.DataFrame):
        if format != "csv":
            raise ValueError("a DataFrame log must use format='csv' with named columns")
        raw = log.copy()
        path = None
    else:
        path = Path(log)
        if not path.is_file():
            raise FileNotFoundError(f"log {str(path)!r} not found (driftrank never downloads "
                                    "logs: point at your own file)")
        raw = _read_file(path, format)
    if format == "movielens":
        columns = LogColumns(user="user", item="item", time="timestamp", click=None,
                             rating="rating", topic=None)
    columns = columns or LogColumns()
    frame, info = _tidy(raw, columns, name)
    source = None
    if format == "movielens" and genres is not False and path is not None:
        genre_file = Path(genres) if genres else _genre_file_beside(path)
        if genre_file is not None:
            frame["topic"] = frame["item"].map(read_genres(genre_file))
            source = str(genre_file)
    elif genres not in (None, False):
        frame["topic"] = frame["item"].map(read_genres(Path(genres)))
        source = str(genres)
    elif "topic" in frame:
        source = f"column {columns.topic!r}"
    info["topics_from"] = source
    return frame, info


def _read_file(path: Path, format: str) -> pd.DataFrame:
    try:
        if format == "csv":
            return pd.read_csv(path)
        with path.open("r", encoding="latin-1") as f:
            head = f.readline()
        if "userId" in head:  # ratings.csv of the newer MovieLens releases
            raw = pd.read_csv(path)
            return raw.rename(columns={"userId": "user", "movieId": "item"})
        return pd.read_csv(path, sep="\t", header=None,
                           names=["user", "item", "rating", "timestamp"])
    except pd.errors.EmptyDataError:
        raise ValueError(f"log {str(path)!r} is empty: it has no rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"log {str(path)!r} could not be parsed as {format}: {exc}") from exc


def _tidy(raw: pd.DataFrame, c: LogColumns, name: str) -> tuple[pd.DataFrame, dict]:
    need = {"user": c.user, "item": c.item, "time": c.time}
    missing = [col for col in need.values() if col not in raw.columns]
    if missing:
        raise ValueError(
            f"{name} has no column(s) {missing}; its columns are {list(raw.columns)}. Name "
            "the right ones (driftrank calibrate --user-col/--item-col/--time-col, or "
            "LogColumns(...))")
    if len(raw) == 0:
        raise ValueError(f"{name} is empty: it has no rows")
    out = pd.DataFrame(index=raw.index)
    for key in ("user", "item"):
        out[key] = _integer_ids(raw[need[key]], need[key], name)
    out["time"] = _times(raw[c.time], c.time, name)
    kind = "interactions"
    if c.click is not None and c.click in raw.columns:
        out["click"] = _clicks(raw[c.click], c.click, name)
        kind = "impressions"
    if c.topic is not None and c.topic in raw.columns:
        topic = raw[c.topic]
        if topic.isna().any():
            row = int(np.flatnonzero(topic.isna().to_numpy())[0])
            raise ValueError(f"{name}: column {c.topic!r} is empty at row {row}; give every "
                             "row its item's topic or drop the column")
        out["topic"] = topic.astype(str).to_numpy()
    out = out.reset_index(drop=True)
    in_order = bool(out["time"].is_monotonic_increasing)
    if not in_order:  # logs concatenated from shards are often out of order: sort, stably
        out = out.sort_values("time", kind="mergesort").reset_index(drop=True)
    info = {"rows": int(len(out)), "kind": kind, "sorted_by_time": not in_order}
    return out, info


def _plain(value):
    """A cell as a plain Python value, so messages read 2.5 rather than np.float64(2.5)."""
    return value.item() if isinstance(value, np.generic) else value


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _integer_ids(col: pd.Series, name: str, log: str) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    values_f = values.to_numpy(dtype=float, na_value=np.nan)
    bad |= ~bad & (np.round(np.nan_to_num(values_f)) != np.nan_to_num(values_f))
    if bad.any():
        row = _first_bad(bad)
        value = _plain(col.iloc[row])
        what = "non-numeric" if values.isna().iloc[row] else "non-integer"
        raise ValueError(
            f"{log}: column {name!r} has a {what} id {value!r} at row {row}; ids must be "
            "integers (map string ids to integers first)")
    return values_f.astype(np.int64)


def _times(col: pd.Series, name: str, log: str) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce")
    if values.isna().any():
        if not pd.api.types.is_numeric_dtype(col):
            dates = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
            if not dates.isna().any():
                epoch = pd.Timestamp(0, tz="UTC")
                return (dates - epoch).dt.total_seconds().to_numpy(np.float64)
        row = _first_bad(values.isna().to_numpy())
        raise ValueError(f"{log}: column {name!r} has a timestamp {_plain(col.iloc[row])!r} at row "
                         f"{row} that is neither a number nor a date")
    return values.to_numpy(np.float64)


def _clicks(col: pd.Series, name: str, log: str) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        row = _first_bad(bad)
        raise ValueError(f"{log}: column {name!r} must be 0 or 1 (shown, clicked) but row {row} "
                         f"has {_plain(col.iloc[row])!r}; for ratings, name the column as the "
                         "rating column instead")
    return values.astype(np.int8)


def _genre_file_beside(path: Path) -> Path | None:
    for candidate in ("u.item", "movies.csv"):
        if (path.parent / candidate).is_file():
            return path.parent / candidate
    return None


def read_genres(path: Path) -> dict[int, str]:
    """Item id -> one genre, from MovieLens ``u.item`` (19 genre flags) or ``movies.csv``
    (``A|B`` genres). An item with several genres takes its rarest, the most telling one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"genre file {str(path)!r} not found")
    if path.name.endswith(".csv"):
        movies = pd.read_csv(path)
        if "movieId" not in movies or "genres" not in movies:
            raise ValueError(f"{path}: a movies.csv needs columns movieId and genres")
        lists = {int(m): [g for g in str(gs).split("|") if g and g != "(no genres listed)"]
                 for m, gs in zip(movies["movieId"], movies["genres"], strict=True)}
    else:
        table = pd.read_csv(path, sep="|", header=None, encoding="latin-1")
        if table.shape[1] != 5 + len(MOVIELENS_GENRES):
            raise ValueError(f"{path}: a MovieLens u.item has {5 + len(MOVIELENS_GENRES)} "
                             f"'|'-separated fields per line, this one has {table.shape[1]}")
        flags = table.iloc[:, 5:].to_numpy()
        lists = {int(m): [g for g, f in zip(MOVIELENS_GENRES, row, strict=True)
                          if f == 1 and g != "unknown"]
                 for m, row in zip(table.iloc[:, 0], flags, strict=True)}
    count: dict[str, int] = {}
    for genres in lists.values():
        for g in genres:
            count[g] = count.get(g, 0) + 1
    return {m: (min(gs, key=lambda g: (count[g], g)) if gs else "unknown")
            for m, gs in lists.items()}
