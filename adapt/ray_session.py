"""One way to get a Ray session, for every caller (grid launcher, LAST's Ray backend, benches).

Ray allows one session per process. Whoever needs it calls :func:`ray_session`: an initialised
session is used as it is (a test fixture's, a user's ``ray.init`` on a cluster); otherwise one
is started here, local with ``num_cpus`` CPUs or connected to ``address``, and shut down again
when the ``with`` block ends. :func:`start_ray` is the same for owners that outlive a block
(they call ``ray.shutdown()`` themselves when it returns True).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator


def start_ray(address: str | None = None, num_cpus: int | None = None,
              runtime_env: dict | None = None, **options) -> bool:
    """Initialise Ray unless it is; True if this call started it.

    ``num_cpus`` applies to a local session only (a cluster has its own); ``runtime_env`` to a
    session started here (callers pass it per task otherwise); ``options`` go to ``ray.init``
    (e.g. ``log_to_driver=False``).
    """
    import ray

    if ray.is_initialized():
        if address:
            warnings.warn(f"Ray is already initialised; address={address!r} is ignored and the "
                          "running session is used", stacklevel=3)
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # no address: a fresh local session of our own ("local"), never a Ray cluster that happens
    # to run on this machine (plain ray.init() would join it, with its CPUs and its sys.path)
    kwargs: dict = {"address": address or "local", **options}
    if not address:
        kwargs.setdefault("include_dashboard", False)
    if num_cpus is not None and not address:
        kwargs["num_cpus"] = num_cpus
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    ray.init(**kwargs)
    return True


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None,
                runtime_env: dict | None = None, **options) -> Iterator[bool]:
    """``with ray_session(...) as started_here:`` a Ray session for the block (see module)."""
    import ray

    started = start_ray(address, num_cpus, runtime_env, **options)
    try:
        yield started
    finally:
        if started:
            ray.shutdown()
