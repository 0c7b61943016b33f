"""A frozen model plus small trainable modules spliced into its hidden features.

Parameter patches (adapters) and feature modulation (FiLM) both change a pretrained network by
inserting a small module after one of its layers while the network itself stays frozen. Both
models here compute their hidden features in one sub-module whose output everything downstream
reads (the evaluator's ``mix``: the per-position hidden vector; the generator's ``enc_mlp``: the
candidate states the pointer and the decoder read), so a forward hook that replaces that output
is enough: no model code changes, and the wrapped model is still the same class to everything
that calls it.

:class:`PatchedModel` owns the frozen base and the patches, so ``parameters()`` and
``state_dict()`` cover both, and the existing trainers (``train_evaluator``,
``train_imitation``, ``train_policy_gradient``) fit the patches unchanged: the base's
parameters have ``requires_grad=False``, get no gradient, and Adam leaves them alone. The base
stays in eval mode even while the patches train (a frozen network is a fixed function).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from torch import nn

from .. import evaluator as ev
from .. import generator as gen

EVALUATOR_SITE = "mix"  # ListwiseEvaluator: per-position hidden vector (B, K, H)
GENERATOR_SITE = "enc_mlp"  # SlateGenerator: candidate states (B, N, H)
USER_SITE = "user_proj"  # both models: its input is the model's user input (B, Fu)


class PatchedModel(nn.Module):
    """``base`` (frozen) with ``patches[site]`` applied to the output of sub-module ``site``.

    Every attribute the wrapper lacks is read from the base (``config``, ``encode``,
    ``decode``, ``greedy``, ``score``, ...), so it stands in for the base model anywhere.
    ``patches_off()`` runs the plain base (for the base's own residuals, or a comparison).
    Do not ``copy.deepcopy`` it (the hooks would still call the original's patches); save and
    load ``state_dict()`` instead.
    """

    def __init__(self, base: nn.Module, patches: Mapping[str, nn.Module]):
        super().__init__()
        if not patches:
            raise ValueError("PatchedModel needs at least one patch {site: module}")
        self.base = base
        base.requires_grad_(False)
        base.eval()
        self.patches = nn.ModuleDict()
        self.sites: dict[str, str] = {}
        self._enabled = True
        self._handles = []
        for site, module in patches.items():
            try:
                target = base.get_submodule(site)
            except AttributeError as exc:
                raise ValueError(f"{type(base).__name__} has no sub-module {site!r} to patch; "
                                 f"valid: {[n for n, _ in base.named_modules() if n]}") from exc
            key = site.replace(".", "__")
            self.patches[key] = module
            self.sites[site] = key
            self._handles.append(target.register_forward_hook(self._hook_for(key)))

    def _hook_for(self, key: str):
        def hook(module, inputs, output):
            return self.patches[key](output) if self._enabled else output
        return hook

    def forward(self, *args, **kwargs):
        return self.base(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            base = self._modules.get("base")
            if base is None:
                raise
            return getattr(base, name)

    def train(self, mode: bool = True) -> PatchedModel:
        super().train(mode)
        self.base.eval()
        return self

    @contextlib.contextmanager
    def patches_off(self):
        """Run the unpatched base inside this block."""
        enabled, self._enabled = self._enabled, False
        try:
            yield self
        finally:
            self._enabled = enabled

    def remove(self) -> None:
        """Detach the hooks: the base is plain again (the wrapper is unusable afterwards)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def hidden_size(model: nn.Module) -> int:
    return int(model.config.hidden)


def train_patches(
    evaluator: PatchedModel,
    generator: PatchedModel,
    data: Mapping,
    *,
    seed: int,
    evaluator_lr: float,
    generator_lr: float,
    imitation: bool = True,
    pg_steps: int = 10,
) -> dict:
    """One period's update of the patches, the same schedule as ``incremental`` (one pass of
    BCE on the evaluator, imitation of the clicked orders, a few policy-gradient steps against
    the refreshed evaluator) but only the patches move."""
    out = {}
    out["evaluator"] = ev.train_evaluator(evaluator, data, epochs=1, lr=evaluator_lr,
                                          seed=seed)["final_loss"]
    evaluator.eval()
    if imitation:
        out["imitation"] = gen.train_imitation(generator, data, epochs=1, lr=generator_lr,
                                               seed=seed)["final_loss"]
    if pg_steps:
        out["pg_reward"] = gen.train_policy_gradient(generator, evaluator, data, steps=pg_steps,
                                                     lr=generator_lr, seed=seed)["final_reward"]
    generator.eval()
    return out
