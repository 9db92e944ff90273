"""Class unlearning for classifiers (SPEC sections 4 and 5): one small class per method, in a registry
whose names drive ``gan-unlearn unlearn-classifier --method``.

Every method gets a copy of the model and the data it is allowed to see: zero-shot methods only proxy
samples of the class (test-split images never trained on); the others the class's training images.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from gan_unlearn.data import ImageDataset
from gan_unlearn.errors import UserError
from gan_unlearn.relevance import unit_relevance


@dataclass
class ForgetData:
    """What a classifier unlearning method may use."""

    class_id: int
    forget_train: ImageDataset  # training images of the class (non-zero-shot methods)
    proxy: ImageDataset  # test-split images of the class, never trained on (zero-shot methods)
    proxy_test_index: torch.Tensor  # where each proxy image sits in the test split


class ClassifierUnlearningMethod:
    """Base: ``apply`` returns an unlearned copy of ``model``; parameters are dataclass-like attributes."""

    name = "base"
    zero_shot = False
    defaults: dict = {}

    def __init__(self, seed: int = 0, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise UserError(f"{self.name} has no parameter(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(self.defaults)) or 'none'}")
        self.params = {**self.defaults, **params}
        self.seed = seed

    def apply(self, model: torch.nn.Module, data: ForgetData, device) -> torch.nn.Module:
        model = copy.deepcopy(model).to(device).eval()
        torch.manual_seed(self.seed)
        self.unlearn(model, data, torch.device(device))
        return model.eval()

    def unlearn(self, model, data: ForgetData, device) -> None:
        raise NotImplementedError


# --- neuronal path perturbation ---------------------------------------------------------------------------
def path_units(model, proxy_images: torch.Tensor, top_k: int, top_h: int, epsilon: float, device) -> torch.Tensor:
    """Hidden units on the forgotten class's paths: each proxy sample's top-K units by LRP-epsilon relevance
    at the last linear layer's input (seeded at the predicted logit), ranked by how often they occur."""
    x = proxy_images.to(device)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    rel = unit_relevance(model, model.head, x, lambda out: out.gather(1, predicted[:, None]).squeeze(1),
                         at="input", rule="epsilon", epsilon=epsilon, reduce="none")
    k = min(top_k, rel.shape[1])
    top = rel.topk(k, dim=1).indices
    counts = torch.bincount(top.flatten().cpu(), minlength=rel.shape[1]).double()
    score = counts + rel.sum(0).cpu().double() / (rel.abs().sum() + 1e-12).cpu().double()  # ties: total relevance
    return score.topk(min(top_h, rel.shape[1])).indices


class PathPerturbation(ClassifierUnlearningMethod):
    """Zero-shot: zero the incoming weights of the class's top-H path units and their weights to the class."""

    name = "path-perturbation"
    zero_shot = True
    defaults = {"num_proxy": 36, "top_k": 50, "top_h": 80, "epsilon": 0.1}

    def perturb(self, weights: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(weights)

    def unlearn(self, model, data, device):
        p = self.params
        proxy = data.proxy.images[: p["num_proxy"]]
        if len(proxy) == 0:
            raise UserError(f"no proxy samples of class {data.class_id} in the test split")
        from gan_unlearn.data import to_float

        units = path_units(model, to_float(proxy), p["top_k"], p["top_h"], p["epsilon"], device).to(device)
        with torch.no_grad():
            model.fc.weight[units] = self.perturb(model.fc.weight[units])
            model.head.weight[data.class_id, units] = self.perturb(model.head.weight[data.class_id, units])
        self.units = units.cpu()


class PathGaussian(PathPerturbation):
    """Baseline: Gaussian noise (std = scale x the weights' std) on the same path weights instead of zeros."""

    name = "path-gaussian"
    defaults = {**PathPerturbation.defaults, "scale": 1.0}

    def perturb(self, weights):
        return weights + torch.randn_like(weights) * self.params["scale"] * weights.std()


class PathLaplace(PathPerturbation):
    """Baseline: Laplace noise (same standard deviation as path-gaussian) on the same path weights."""

    name = "path-laplace"
    defaults = {**PathPerturbation.defaults, "scale": 1.0}

    def perturb(self, weights):
        b = self.params["scale"] * weights.std() / math.sqrt(2)
        return weights + torch.distributions.Laplace(0.0, b.clamp_min(1e-12)).sample(weights.shape).to(weights)


# --- JiT: Lipschitz regularisation on the forget samples ----------------------------------------------------
class JiT(ClassifierUnlearningMethod):
    """Zero-shot Lipschitz unlearning (Foster et al.): for each forget batch, minimise the mean over N Gaussian
    perturbations of ||f(x) - f(x')|| / ||x - x'||, one SGD step per batch, one pass."""

    name = "jit"
    defaults = {"lr": 0.01, "sigma": 0.5, "num_perturbations": 25, "batch_size": 32, "num_samples": 512}

    def unlearn(self, model, data, device):
        p = self.params
        opt = torch.optim.SGD(model.parameters(), lr=p["lr"])
        images = data.forget_train.images[torch.randperm(len(data.forget_train))]
        if p["num_samples"] > 0:  # 0: the whole forget set
            images = images[: p["num_samples"]]
        from gan_unlearn.data import to_float

        for i in range(0, len(images), p["batch_size"]):
            x = to_float(images[i:i + p["batch_size"]].to(device))
            lo, hi = x.min(), x.max()
            out = model(x)
            loss = 0.0
            for _ in range(p["num_perturbations"]):
                xp = (x + p["sigma"] * torch.randn_like(x)).clamp(lo, hi)
                with torch.no_grad():
                    out_p = model(xp)
                loss = loss + ((out - out_p).norm(dim=1) / (x - xp).flatten(1).norm(dim=1)).mean()
            loss = loss / p["num_perturbations"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


# --- Top-K / Random-k parameter perturbation ---------------------------------------------------------------
class TopK(ClassifierUnlearningMethod):
    """Gaussian noise (std sigma) on the k% of weights most sensitive to the forget data (|d logit_c / dw|
    on the class's training images)."""

    name = "topk"
    defaults = {"k_percent": 1.0, "sigma": 0.1, "num_samples": 512}

    def select(self, model, data, device, flat_sensitivity: torch.Tensor, count: int) -> torch.Tensor:
        return flat_sensitivity.topk(count).indices

    def unlearn(self, model, data, device):
        p = self.params
        from gan_unlearn.data import to_float

        x = to_float(data.forget_train.images[: p["num_samples"]].to(device))
        params = [q for q in model.parameters() if q.ndim > 1]  # weights, not biases
        model.zero_grad(set_to_none=True)
        model(x)[:, data.class_id].mean().backward()  # sensitivity of the class's logit on its forget data
        sens = torch.cat([q.grad.abs().flatten() for q in params])
        count = max(1, int(len(sens) * p["k_percent"] / 100))
        chosen = self.select(model, data, device, sens, count)
        noise = torch.zeros_like(sens)
        noise[chosen] = torch.randn(count, device=sens.device) * p["sigma"]
        with torch.no_grad():
            offset = 0
            for q in params:
                q += noise[offset:offset + q.numel()].view_as(q)
                offset += q.numel()
        model.zero_grad(set_to_none=True)


class RandomK(TopK):
    """Baseline: the same noise on k% of weights chosen at random."""

    name = "randomk"

    def select(self, model, data, device, flat_sensitivity, count):
        return torch.randperm(len(flat_sensitivity), device=flat_sensitivity.device)[:count]


# --- L2UL ---------------------------------------------------------------------------------------------------
def targeted_l2_pgd(model, x, target, eps: float, steps: int, step_size: float) -> torch.Tensor:
    """Targeted L2 PGD: move x toward class ``target`` within an L2 ball of radius eps (images in [-1, 1])."""
    delta = torch.zeros_like(x, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(model(x + delta), target)
        (grad,) = torch.autograd.grad(loss, delta)
        g = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        with torch.no_grad():
            delta -= step_size * g
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta *= (eps / norms).clamp(max=1.0)
            delta.copy_((x + delta).clamp(-1, 1) - x)
    return (x + delta).detach()


class L2UL(ClassifierUnlearningMethod):
    """Instance-wise unlearning (Cha et al.): gradient ascent on forget instances, cross entropy on their
    targeted L2-PGD adversarial examples (labelled with the target class), and an anchor to the original
    weights weighted by 1 - normalised MAS importance; SGD until forget accuracy is 0 (or max_steps)."""

    name = "l2ul"
    defaults = {"num_instances": 128, "lr": 0.01, "anchor": 1.0, "pgd_eps": 2.0, "pgd_steps": 5,
                "max_steps": 100}

    def unlearn(self, model, data, device):
        p = self.params
        from gan_unlearn.data import to_float

        x = to_float(data.forget_train.images[: p["num_instances"]].to(device))
        y = data.forget_train.labels[: p["num_instances"]].to(device)
        original = [q.detach().clone() for q in model.parameters()]
        # MAS importance: mean |d ||f(x)||^2 / d theta| on the forget instances, normalised to [0, 1]
        model.zero_grad(set_to_none=True)
        model(x).pow(2).sum(1).mean().backward()
        importance = [q.grad.abs() for q in model.parameters()]
        top = max(i.max() for i in importance).clamp_min(1e-12)
        anchor_w = [1 - i / top for i in importance]
        model.zero_grad(set_to_none=True)
        num_classes = model.head.out_features
        target = (y + torch.randint(1, num_classes, y.shape, device=device)) % num_classes
        opt = torch.optim.SGD(model.parameters(), lr=p["lr"])
        self.steps = 0
        for _ in range(p["max_steps"]):
            if (model(x).argmax(1) == y).float().mean() == 0:
                break
            x_adv = targeted_l2_pgd(model, x, target, p["pgd_eps"], p["pgd_steps"], p["pgd_eps"] / 2)
            loss = -F.cross_entropy(model(x), y) + F.cross_entropy(model(x_adv), target)
            loss = loss + p["anchor"] * sum((w * (q - o).pow(2)).sum() for w, q, o in
                                            zip(anchor_w, model.parameters(), original))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.steps += 1


METHODS = {cls.name: cls for cls in (PathPerturbation, PathGaussian, PathLaplace, JiT, TopK, RandomK, L2UL)}


def get_method(name: str, **params) -> ClassifierUnlearningMethod:
    if name not in METHODS:
        raise UserError(f"unknown classifier unlearning method {name!r}; use one of {', '.join(METHODS)}")
    return METHODS[name](**params)


def forget_data(class_id: int, train: ImageDataset, test: ImageDataset, seed: int = 0) -> ForgetData:
    """The class's training images (shuffled, seeded) and its test-split images as zero-shot proxies."""
    if not 0 <= class_id < train.num_classes:
        raise UserError(f"class {class_id} is out of range: the dataset has classes 0..{train.num_classes - 1}")
    g = torch.Generator().manual_seed(seed)
    tr = (train.labels == class_id).nonzero().flatten()
    te = (test.labels == class_id).nonzero().flatten()
    te = te[torch.randperm(len(te), generator=g)]
    return ForgetData(class_id, train.subset(tr[torch.randperm(len(tr), generator=g)]), test.subset(te), te)


def unlearn_classifier_checkpoint(model_path, class_id: int, method: str, out, *, params: dict | None = None,
                                  dataset: str | None = None, data_root=None, download: bool = False, device="auto",
                                  seed: int = 0, eval_train_samples: int = 10000) -> dict:
    """Unlearn a class from a classifier checkpoint, write the result to ``out``, return a summary with
    the accuracies and membership AUC before and after."""
    import time

    from gan_unlearn.checkpoint import (check_dataset_matches, load_checkpoint, model_entry, package_versions,
                                        restore_model, save_checkpoint)
    from gan_unlearn.data import load_dataset
    from gan_unlearn.runtime import resolve_device
    from metrics.classifier_metrics import classifier_report

    from gan_unlearn.checkpoint import file_sha256

    unlearner = get_method(method, seed=seed, **(params or {}))
    dev = resolve_device(device)
    ckpt = load_checkpoint(model_path, kind="classifier")
    name = dataset or ckpt["dataset"]["name"]
    train, test = load_dataset(name, "train", data_root, download), load_dataset(name, "test", data_root, download)
    check_dataset_matches(ckpt, train, what=f"classifier {model_path}")
    data = forget_data(class_id, train, test, seed)
    model = restore_model(ckpt, "classifier", dev).eval()
    t0 = time.perf_counter()
    new_model = unlearner.apply(model, data, dev)
    seconds = time.perf_counter() - t0
    # evaluation: a seeded sample of the training set, and the test set without the proxies a zero-shot method saw
    sample = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:eval_train_samples])
    eval_test = _without_proxies(test, data, unlearner)
    before = classifier_report(model, class_id, sample, eval_test, dev)
    after = classifier_report(new_model, class_id, sample, eval_test, dev)
    record = {"request": {"kind": "class", "class_id": class_id}, "method": method, "parameters": unlearner.params,
              "zero_shot": unlearner.zero_shot, "seconds": round(seconds, 4), "source_checkpoint": str(model_path),
              "source_sha256": file_sha256(model_path), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    new = {k: v for k, v in ckpt.items() if k not in ("models", "format")}
    new.update(models={"classifier": model_entry(new_model)}, versions=package_versions(), unlearning=record,
               metrics={**ckpt.get("metrics", {}), "after_unlearning": after},
               lineage=list(ckpt.get("lineage", [])) + [{"event": f"unlearn-{method}", "class_id": class_id,
                                                         "time": record["time"]}])
    save_checkpoint(out, new)
    return {**record, "before": before, "after": after, "eval_test_size": len(eval_test),
            "eval_train_size": len(sample)}


def _without_proxies(test: ImageDataset, data: ForgetData, unlearner: ClassifierUnlearningMethod) -> ImageDataset:
    """The test set minus the proxy images a zero-shot method looked at."""
    n = unlearner.params.get("num_proxy", 0) if unlearner.zero_shot else 0
    keep = torch.ones(len(test), dtype=torch.bool)
    keep[data.proxy_test_index[:n]] = False
    return test.subset(keep.nonzero().flatten())
