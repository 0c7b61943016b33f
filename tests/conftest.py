"""Shared pytest fixtures: small worlds so the suite stays fast on 2 cores."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

SMALL = dict(n_users=400, n_items=300, max_steps=10_000)


@pytest.fixture
def small():
    """Keyword sizes of a small world."""
    return dict(SMALL)
