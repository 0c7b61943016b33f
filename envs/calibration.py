"""Worlds calibrated from a real interaction log: load a fitted ``.npz`` and install its entities.

``driftrank calibrate LOG --out world.npz`` (``driftrank.experiments.calibrate``) fits items,
users and drift to a log; this module is the numpy-only other half that the world uses. A
world setting ``calibration="world.npz"`` makes :class:`~driftrank.envs.world.World` draw its
entities as usual (so every random stream advances by the same amounts as in any world) and then
replace them with the fitted ones. The catalog and population sizes follow the file.

What the file replaces, and what stays drawn
    Replaced: item latent vectors, topics, quality, topic popularity; user tastes and activity
    (arrival) rates (see :func:`install` for every array rebuilt from them). Still drawn from
    the world stream: the observation projection, users' position-bias sensitivity and feature
    noise, items' quality-drift loadings. Drift stays the scenario's: the file's fitted drift
    settings (gradual timescale, abrupt events) are applied only when asked for, with
    :func:`fitted_drift` (``make_config(..., calibration=p, **fitted_drift(p))``), so every
    scenario can also be run on the calibrated entities.

File format (version 1)
    An ``.npz`` holding the arrays below and a ``metadata`` entry: a JSON string with at least
    ``format`` (``"driftrank-calibration"``) and ``version`` (1).

    =====================  ===========  =========================================================
    array                  shape        meaning
    =====================  ===========  =========================================================
    ``item_vectors``       (M, d)       true latent v_j, in world units (``k_aff * u.v`` is the
                                        affinity logit at the fitted ``affinity_scale``)
    ``item_topic``         (M,) int     topic of each item, in [0, T)
    ``item_quality``       (M,)         quality bias b_j (logit units, topic part removed)
    ``topic_popularity``   (T,)         topic popularity term (logit units)
    ``user_tastes``        (U, d)       true taste u_i; whitened so each dimension has variance
                                        1/d, the world's own prior (drift redraws stay alike)
    ``user_activity``      (U,)         relative arrival rate (> 0)
    =====================  ===========  =========================================================

    Optional arrays (kept for plots and for mapping back to the log): ``item_ids``,
    ``user_ids`` (the log's ids), ``log_item_clicks``, ``log_user_requests``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "driftrank-calibration"
VERSION = 1
REQUIRED = ("item_vectors", "item_topic", "item_quality", "topic_popularity", "user_tastes",
            "user_activity")
SIZE_FIELDS = ("n_items", "n_users", "latent_dim", "n_topics")
DRIFT_FIELDS = ("user_drift_timescale", "abrupt_times", "abrupt_user_share")
NOISE_SALT = 0xCA1  # the stream of a calibrated catalog's feature noise


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message says what is wrong and what to do."""


@dataclass(frozen=True, eq=False)
class Calibration:
    """Fitted entities of one world (read-only arrays) and the fit's metadata."""

    item_vectors: np.ndarray
    item_topic: np.ndarray
    item_quality: np.ndarray
    topic_popularity: np.ndarray
    user_tastes: np.ndarray
    user_activity: np.ndarray
    metadata: dict
    extras: dict
    digest: str  # SHA-256 of the file's bytes: what the file holds, whatever its path

    @property
    def sizes(self) -> dict[str, int]:
        """World sizes that follow the file: ``n_items``, ``n_users``, ``latent_dim``,
        ``n_topics``."""
        m, d = self.item_vectors.shape
        return {"n_items": int(m), "n_users": int(self.user_tastes.shape[0]),
                "latent_dim": int(d), "n_topics": int(self.topic_popularity.shape[0])}

    def drift_settings(self) -> dict:
        """The world settings of the drift fitted to the log (see :func:`fitted_drift`)."""
        drift = self.metadata.get("drift", {})
        out = {}
        if "user_drift_timescale" in drift:
            value = drift["user_drift_timescale"]
            out["user_drift_timescale"] = math.inf if value is None else float(value)
        if "abrupt_times" in drift:
            out["abrupt_times"] = tuple(int(t) for t in drift["abrupt_times"])
        if "abrupt_user_share" in drift:
            out["abrupt_user_share"] = float(drift["abrupt_user_share"])
        return out


_CACHE: dict[tuple, Calibration] = {}


def load_calibration(path: str | os.PathLike) -> Calibration:
    """Read and validate a calibration file; raise :class:`CalibrationError` saying what is
    wrong. Loaded files are cached by (path, modification time, size): every world of a grid
    reads the file once per process."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(
            f"calibration file {str(path)!r} not found; build one with "
            f"`driftrank calibrate LOG --out {path.name or 'world.npz'}`")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = _read(path)
    return _CACHE[key]


def fitted_drift(path: str | os.PathLike) -> dict:
    """World settings of the drift fitted to the log: ``user_drift_timescale`` (inf when the log
    showed no taste change beyond sampling noise), ``abrupt_times`` and ``abrupt_user_share``.
    Pass them with the file to replay the log's drift:
    ``make_config("stationary", calibration=p, **fitted_drift(p))``."""
    return load_calibration(path).drift_settings()


def calibrated_settings(config) -> dict:
    """The settings a ``WorldConfig`` with ``calibration`` set takes from the file: the sizes,
    the file's absolute path (so Ray workers started elsewhere find it) and the SHA-256 of its
    contents (``calibration_digest``: caches and cell keys built from the config then tell an
    overwritten file from the one they were made with).

    A config that already carries a digest (one rebuilt from ``to_dict()``, or ``replace``d)
    must still match the file: a file changed since is an error, not a silent other world.

    A size the caller set to something other than its default and the file's value is an error
    (the file decides sizes); a size left at its default silently follows the file.
    """
    value = config.calibration
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise CalibrationError(
            f"bad world config: calibration={value!r} must be the path of a .npz file made "
            "by `driftrank calibrate` (or None for a drawn world)")
    path = Path(value).expanduser()
    cal = load_calibration(path)
    sizes = cal.sizes
    if config.calibration_digest not in (None, cal.digest):
        raise CalibrationError(
            f"calibration file {str(path)!r} changed since this world config was made "
            f"(calibration_digest {config.calibration_digest[:12]}... but the file's is "
            f"{cal.digest[:12]}...); make the config again from the file (leave "
            "calibration_digest out: it is read from the file)")
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    clash = {name: getattr(config, name) for name in SIZE_FIELDS
             if getattr(config, name) not in (defaults[name], sizes[name])}
    if clash:
        raise CalibrationError(
            f"bad world config: {clash} conflict with calibration file {str(path)!r}, whose "
            f"sizes are {sizes}; leave these settings out: a calibrated world's sizes follow "
            "its file")
    return {**sizes, "calibration": str(path.resolve()), "calibration_digest": cal.digest}


def _read(path: Path) -> Calibration:
    def bad(msg: str) -> CalibrationError:
        return CalibrationError(
            f"calibration file {str(path)!r}: {msg}; rebuild it with "
            f"`driftrank calibrate LOG --out {path.name}`")

    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise bad(f"not a readable .npz file ({exc})") from exc
    with npz:
        names = set(npz.files)
        if "metadata" not in names:
            raise bad("no 'metadata' entry (not a driftrank calibration file?)")
        try:
            metadata = json.loads(str(npz["metadata"]))
        except (json.JSONDecodeError, ValueError) as exc:
            raise bad(f"'metadata' is not valid JSON ({exc})") from exc
        found = metadata.get("format") if isinstance(metadata, dict) else None
        if found != FORMAT:
            raise bad(f"metadata format is {found!r}, expected {FORMAT!r}")
        version = metadata.get("version")
        if version != VERSION:
            raise CalibrationError(
                f"calibration file {str(path)!r} has format version {version!r} but this "
                f"driftrank reads version {VERSION}; rebuild it with this driftrank "
                f"(`driftrank calibrate LOG --out {path.name}`)")
        missing = [name for name in REQUIRED if name not in names]
        if missing:
            raise bad(f"missing array(s) {missing}")
        arrays = {name: npz[name] for name in REQUIRED}
        extras = {name: npz[name] for name in sorted(names - set(REQUIRED) - {"metadata"})}
    _check_arrays(arrays, bad)
    for a in (*arrays.values(), *extras.values()):
        a.setflags(write=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Calibration(**arrays, metadata=metadata, extras=extras, digest=digest)


def _check_arrays(a: dict[str, np.ndarray], bad) -> None:
    v, users = a["item_vectors"], a["user_tastes"]
    if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 1:
        raise bad(f"item_vectors has shape {v.shape}, expected (n_items, latent_dim)")
    m, d = v.shape
    t = a["topic_popularity"].shape[0] if a["topic_popularity"].ndim == 1 else -1
    expected = {"item_topic": (m,), "item_quality": (m,), "user_activity": (users.shape[0],),
                "user_tastes": (users.shape[0], d), "topic_popularity": (t,)}
    if users.ndim != 2 or users.shape[0] < 1:
        raise bad(f"user_tastes has shape {users.shape}, expected (n_users, {d})")
    if t < 1:
        raise bad(f"topic_popularity has shape {a['topic_popularity'].shape}, expected (n_topics,)")
    for name, shape in expected.items():
        if a[name].shape != shape:
            raise bad(f"{name} has shape {a[name].shape}, expected {shape} "
                      f"(item_vectors is {v.shape}, user_tastes is {users.shape})")
    for name in REQUIRED:
        if name == "item_topic":
            continue
        if not np.issubdtype(a[name].dtype, np.number) or not np.isfinite(a[name]).all():
            raise bad(f"{name} must hold finite numbers")
    topic = a["item_topic"]
    if not np.issubdtype(topic.dtype, np.integer) or topic.min() < 0 or topic.max() >= t:
        raise bad(f"item_topic must hold integers in [0, {t}) (n_topics = len(topic_popularity))")
    if (a["user_activity"] <= 0).any():
        raise bad("user_activity must be > 0 for every user")


def install(world, cal: Calibration) -> None:
    """Replace a freshly built world's drawn entities with the fitted ones.

    Called once from ``World.__init__`` after every entity was drawn and *before* the warm-up
    and the snapshot of the episode-start truth (``taste0``, ``quality0``): the warm-up's
    histories and statistics are then those of the fitted users and items. The world's sizes
    already follow the file (``WorldConfig`` reads them). Every array derived from the fitted
    ones is rebuilt so nothing keeps a trace of the drawn entities:

    - catalog (``world.items``): ``v``, ``topic``, ``quality`` (and ``quality0``), ``static``
      (topic one-hot and the drawn projection of the fitted vectors plus feature noise from a
      stream of its own), and the topic centres new items are drawn around after churn
      (the fitted topics' mean vectors). Quality-drift loadings stay drawn: a log does not
      say how quality moves.
    - population (``world.users``): ``taste`` and ``taste0``, ``activity_feature`` and the
      arrival (alias) table of the base rates. Position-bias sensitivity and taste-feature noise
      stay drawn.
    - drift: ``topic_pop`` and the ``topic_term`` built from it.
    """
    from .catalog import FEATURE_BOUND  # lazy: catalog -> config -> this module
    from .population import _alias_table

    c = world.config
    sizes = cal.sizes
    actual = {name: getattr(c, name) for name in SIZE_FIELDS}
    if actual != sizes:
        raise CalibrationError(f"world sizes {actual} differ from the calibration file's {sizes}")
    m, t = c.n_items, c.n_topics
    items, users = world.items, world.users
    v = cal.item_vectors.astype(np.float32)
    topic = cal.item_topic.astype(np.int64)
    counts = np.bincount(topic, minlength=t)
    centres = np.zeros((t, c.latent_dim), np.float32)
    np.add.at(centres, topic, v)
    # in place: the catalog holds the world's array and draws churned items around it
    world.topic_centres[:] = centres / np.maximum(counts, 1)[:, None]
    items.topic[:] = topic
    items.v[:] = v
    items.quality[:] = cal.item_quality
    items.quality0 = items.quality.copy()
    # feature noise from its own stream (world seed only, as the drawn items' noise): the
    # world stream must advance by the same amounts as in a drawn world
    noise = np.random.default_rng([c.world_seed, NOISE_SALT]).standard_normal(
        (m, c.obs_dim)) * c.feature_noise
    static = np.zeros((m, t + c.obs_dim), np.float32)
    static[np.arange(m), topic] = 1.0
    static[:, t:] = np.clip(v @ world.projection.T + noise, -FEATURE_BOUND, FEATURE_BOUND)
    items.static[:] = static

    users.taste[:] = cal.user_tastes
    users.taste0[:] = cal.user_tastes
    activity = cal.user_activity.astype(np.float64)
    users.activity_feature = (np.clip(np.log(activity), -3, 3) / 3).astype(np.float32)
    users._alias_prob, users._alias = _alias_table(activity / activity.sum())

    world.drift.topic_pop = cal.topic_popularity.astype(np.float32).copy()
    world.drift.topic_term = world.drift._topic_term(0)  # built before the first tick
