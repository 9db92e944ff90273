"""Per-unit relevance (channels of conv layers, neurons of linear layers) for a scalar target.

Rules:
- ``grad_x_act`` (default): activation x gradient, which equals LRP-0 on ReLU networks.
- ``epsilon``: LRP-epsilon. At the output z of every Linear / Conv / ConvTranspose layer the incoming
  gradient g is replaced by g * z / (z + eps * sign(z)); activation x (modified) gradient at the probed
  layer is then exactly the epsilon rule's relevance, layer by layer (ReLU, max-pooling, dropout and
  BatchNorm pass the gradient unchanged, as in LRP's usual treatment).

Attribution is a ``with`` block whose hooks are always removed, also after an exception::

    with RelevanceEngine(model, {"hidden": model.head}, at="input", rule="epsilon") as engine:
        per_sample = engine.attribute(images, lambda logits: logits[:, 3])["hidden"]   # (N, units)
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .errors import UserError

RULES = {
    "grad_x_act": "activation x gradient (equal to LRP-0)",
    "epsilon": "LRP-epsilon (a stabiliser epsilon in every layer's denominator)",
}
WEIGHTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                   nn.ConvTranspose3d)


def resolve_layers(model: nn.Module, layers) -> dict[str, nn.Module]:
    """Layer names (dotted paths) or a {name: module} dict -> {name: module}; unknown names are a UserError."""
    if isinstance(layers, dict):
        return dict(layers)
    modules = dict(model.named_modules())
    out = {}
    for name in ([layers] if isinstance(layers, str) else layers):
        if name not in modules or name == "":
            known = ", ".join(n for n in modules if n)
            raise UserError(f"no layer named {name!r}; layers: {known}")
        out[name] = modules[name]
    return out


def _stabilise(z: torch.Tensor, eps: float) -> torch.Tensor:
    return z + eps * torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


class RelevanceEngine:
    """Context manager that records activations of the chosen layers and their (rule-modified) gradients."""

    def __init__(self, model: nn.Module, layers, at: str = "output", rule: str = "grad_x_act",
                 epsilon: float = 0.1):
        if rule not in RULES:
            raise UserError(f"unknown relevance rule {rule!r}; use one of {', '.join(RULES)}")
        if at not in ("input", "output"):
            raise UserError("relevance is taken at a layer's 'input' or 'output'")
        self.model, self.layers, self.at, self.rule, self.epsilon = model, resolve_layers(model, layers), at, rule, epsilon
        self._handles: list = []
        self._acts: dict[str, torch.Tensor] = {}

    # --- hooks ---------------------------------------------------------------------------------------------
    def _capture(self, name):
        def hook(module, inputs, output):
            t = inputs[0] if self.at == "input" else output
            if t.requires_grad:
                self._acts[name] = t
        return hook

    def _epsilon_hook(self, module, inputs, output):
        if not output.requires_grad:
            return
        z = output.detach()
        ratio = z / _stabilise(z, self.epsilon)
        output.register_hook(lambda g: g * ratio)

    def __enter__(self) -> "RelevanceEngine":
        try:
            for name, module in self.layers.items():
                self._handles.append(module.register_forward_hook(self._capture(name)))
            if self.rule == "epsilon":
                for module in self.model.modules():
                    if isinstance(module, WEIGHTED_LAYERS):
                        self._handles.append(module.register_forward_hook(self._epsilon_hook))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._acts.clear()

    # --- attribution ---------------------------------------------------------------------------------------
    def attribute(self, inputs: torch.Tensor, target: Callable[[torch.Tensor], torch.Tensor],
                  reduce: str = "none") -> dict[str, torch.Tensor]:
        """Relevance of each unit of each layer: (N, units) per sample, or summed over the batch (``reduce="sum"``).

        ``target`` maps the model's output to one scalar per sample (for example a class logit). Spatial
        positions of a conv layer's channel are summed into that channel's relevance.
        """
        if not self._handles:
            raise RuntimeError("use RelevanceEngine inside a `with` block")
        self._acts.clear()
        x = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = self.model(x)
            scores = target(out)
            if scores.ndim != 1 or len(scores) != len(x):
                raise UserError("the relevance target must give one scalar per sample")
            grads = torch.autograd.grad(scores.sum(), [self._acts[n] for n in self.layers], allow_unused=True)
        result = {}
        for (name, act), grad in zip(((n, self._acts[n]) for n in self.layers), grads):
            grad = grad if grad is not None else torch.zeros_like(act)
            if self.rule == "epsilon" and self.at == "output" and isinstance(self.layers[name], WEIGHTED_LAYERS):
                # the layer's own epsilon hook already scaled this gradient by z / (z + eps sign z); undo it
                rel = grad * _stabilise(act.detach(), self.epsilon)
            else:
                rel = act.detach() * grad
            rel = rel.flatten(2).sum(2) if rel.ndim > 2 else rel
            result[name] = rel.sum(0) if reduce == "sum" else rel
        self._acts.clear()
        return result


def unit_relevance(model: nn.Module, layer, inputs: torch.Tensor, target, at: str = "output",
                   rule: str = "grad_x_act", epsilon: float = 0.1, reduce: str = "sum",
                   batch_size: int = 256) -> torch.Tensor:
    """Relevance of one layer's units, over a batch processed in chunks (eval mode, hooks removed after)."""
    name = layer if isinstance(layer, str) else "layer"
    layers = {name: layer} if not isinstance(layer, str) else [layer]
    modes = {m: m.training for m in model.modules()}  # restored one by one: submodules may differ
    model.eval()
    parts = []
    try:
        with RelevanceEngine(model, layers, at=at, rule=rule, epsilon=epsilon) as engine:
            for i in range(0, len(inputs), batch_size):
                parts.append(engine.attribute(inputs[i:i + batch_size], target)[name])
    finally:
        for m, mode in modes.items():
            m.training = mode
    rel = torch.cat(parts)
    return rel.sum(0) if reduce == "sum" else rel
