"""``maml``: a meta-learned generator that adapts to each user from the user's first feedback.

First-order MAML (Finn et al., ICML 2017) with users as tasks, as MeLU (Lee et al., KDD 2019)
does for cold-start recommendation, with CAVIA's split (Zintgraf et al., ICML 2019): only a
small per-user vector adapts, the shared network is meta-trained so that adapting it works (see
:mod:`driftrank.adapt.meta`). Offline, the pretrained generator is meta-trained on the same
logs it was trained on (support = a user's earlier request, query = the next ones) and cached
next to the pretrained checkpoints. Online, every user starts from the meta-learned
initialisation (a zero offset); each batch of feedback takes ``inner_steps`` gradient steps on
the offsets of the users who clicked, and their next requests are served with them. Nothing
global changes online: the agent targets users the offline model knows little about (new users,
users whose taste just moved), not a world-wide shift. ``fast_adaptation=False`` serves the
meta-trained generator without the per-user step (what meta-training alone changes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import generator as gen
from ..adapt.meta import FAST, FastWeights, meta_train
from ..envs.logs import generate_logs
from .base import AgentContext
from .labels import FeedbackBuffer
from .pretrained import PretrainConfig, model_inputs, pretrain
from .registry import register_agent
from .static import PretrainedAgent


@dataclass(frozen=True)
class MetaConfig:
    """Meta-training and fast-adaptation settings (the inner loop is the same in both)."""

    steps: int = 200
    tasks_per_step: int = 32
    support: int = 1
    query: int = 2
    inner_steps: int = 3
    inner_lr: float = 10.0
    outer_lr: float = 3e-4

    def replace(self, **kw) -> MetaConfig:
        unknown = sorted(set(kw) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown meta setting(s) {unknown}; valid: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **kw)


def meta_pretrain(context: AgentContext, pretrain_config: PretrainConfig,
                  meta: MetaConfig) -> gen.SlateGenerator:
    """The meta-trained generator for this world (trained once, then loaded from the cache)."""
    base = pretrain(context.world, config=pretrain_config, cache_dir=context.cache_dir,
                    threads=context.threads)
    key = hashlib.sha256(json.dumps({"pretrained": base.path.name, "meta":
                                     dataclasses.asdict(meta)}, sort_keys=True).encode())
    path = Path(context.cache_dir) / f"maml-{key.hexdigest()[:16]}"
    if (path / "generator").exists():
        return gen.load(path / "generator").eval()
    logs = generate_logs(context.world, n_requests=pretrain_config.n_requests, seed=0,
                         noise=pretrain_config.behaviour_noise,
                         epsilon=pretrain_config.behaviour_epsilon)
    train, _ = logs.split(pretrain_config.holdout)
    data = {**model_inputs(train), "slates": train["slates"], "clicks": train["clicks"],
            "user_id": train["user_id"]}
    generator = base.generator
    meta_train(generator, data, steps=meta.steps, tasks_per_step=meta.tasks_per_step,
               support=meta.support, query=meta.query, inner_steps=meta.inner_steps,
               inner_lr=meta.inner_lr, outer_lr=meta.outer_lr, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    try:
        gen.save(generator, generator.config, tmp / "generator")
        try:
            os.replace(tmp, path)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return gen.load(path / "generator").eval()


@register_agent("maml", "meta-learned generator, per-user fast adaptation from first feedback")
class MAMLAgent(PretrainedAgent):
    name = "maml"

    def __init__(self, context: AgentContext, meta_config: dict | None = None,
                 fast_adaptation: bool = True, pretrain_config: dict | None = None):
        super().__init__(context, pretrain_config)
        self.fast_adaptation = bool(fast_adaptation)
        self.meta = MetaConfig().replace(**(meta_config or {}))
        self.generator = meta_pretrain(context, self.pretrain_config, self.meta)
        self.fast = FastWeights(self.generator.config.hidden, self.meta.inner_steps,
                                self.meta.inner_lr)
        self.feedback = FeedbackBuffer(context.world.click_delay, keep=False, owner=self.name)

    @classmethod
    def prepare(cls, context: AgentContext, meta_config: dict | None = None,
                pretrain_config: dict | None = None) -> None:
        """Build (or find) the pretrained and meta-trained checkpoints for this world."""
        meta_pretrain(context, PretrainConfig().replace(**(pretrain_config or {})),
                      MetaConfig().replace(**(meta_config or {})))

    @torch.inference_mode()
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        x = model_inputs(obs)
        enc, h0 = self.generator.encode(x["user"], x["candidates"], x["candidate_ids"])
        delta = {FAST: self.fast.rows(np.asarray(obs["user_id"]))}
        return self.generator.decode(enc, h0, greedy=True, param_delta=delta)[0].numpy()

    def observe(self, feedback) -> None:
        if not self.fast_adaptation:  # ablation: the meta-trained generator alone
            return
        for data in self.feedback.add(feedback):  # batches whose clicks are in
            self.fast.adapt(self.generator, data)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "fast": self.fast.state_dict(),
                "feedback": self.feedback.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.fast.load_state_dict(state["fast"])
        self.feedback.load_state_dict(state["feedback"])
