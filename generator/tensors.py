"""Request tensors of a logged batch, as the generator's trainers need them."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..evaluator.batch import as_float, as_long


def request_tensors(data: Mapping) -> dict[str, torch.Tensor]:
    """``user``, ``candidates``, ``candidate_ids``, ``slates`` (and ``clicks`` if present)."""
    out = {
        "user": as_float(data["user"]),
        "candidates": as_float(data["candidates"]),
        "candidate_ids": as_long(data["candidate_ids"]),
        "slates": as_long(data["slates"]),
    }
    if "clicks" in data:
        out["clicks"] = as_float(data["clicks"])
    return out
