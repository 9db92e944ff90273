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
from gan_unlearn.runtime import eval_mode


@dataclass
class ForgetData:
    """What a classifier unlearning method may use."""

    class_id: int
    forget_train: ImageDataset  # training images of the class (non-zero-shot methods)
    proxy: ImageDataset  # test-split images of the class, never trained on (zero-shot methods)
    proxy_test_index: torch.Tensor  # where each proxy image sits in the test split
    retain: ImageDataset | None = None  # training images of the other classes (repair fine-tunes only)


class ClassifierUnlearningMethod:
    """Base: ``apply`` returns an unlearned copy of ``model``; parameters are dataclass-like attributes."""

    name = "base"
    zero_shot = False
    instance_wise = False  # forgets some training images of the class, not the class
    defaults: dict = {}
    choices: dict = {}  # parameter -> its valid values, for parameters that take one of a few words

    def __init__(self, seed: int = 0, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise UserError(f"{self.name} has no parameter(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(self.defaults)) or 'none'}")
        self.params = {**self.defaults, **params}
        for key, valid in self.choices.items():
            if self.params[key] not in valid:
                raise UserError(f"{self.name} {key} must be one of {', '.join(map(repr, valid))}, not {self.params[key]!r}")
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
    """Zero-shot: zero the class's top-H path units' weights to the class (``incoming``: their incoming rows too).

    ``auto_h`` (default on) picks H per class from the proxies themselves: starting at ``top_h``, it adds the
    next ``h_step`` units of the same relevance ranking until at most ``proxy_target`` of the proxy samples
    are still predicted as the class, or ``max_h`` units are cut. A fixed K/H leaves some MNIST classes
    at 10-20% accuracy (their relevance is spread over more units); the rule sees only the proxies a
    zero-shot method already has, and the proxies are excluded from every evaluation.

    The paper zeroes both ends of each path: the unit's incoming row and its weight to the class. Cutting the
    incoming row silences the unit for every class; on the CIFAR-10 subset that left the rest at 0.892 of its
    accuracy in the worst class (seed 0), so by default only the units' weights to the forgotten class are
    zeroed (worst rest 1.012, every class under 3%; MNIST 1.000). ``incoming=True`` is the paper's cut,
    registered as ``path-perturbation-full``.
    """

    name = "path-perturbation"
    zero_shot = True
    defaults = {"num_proxy": 36, "top_k": 50, "top_h": 80, "epsilon": 0.1, "auto_h": True, "proxy_target": 0.0,
                "h_step": 16, "max_h": 256, "incoming": False}

    def perturb(self, weights: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(weights)

    def unlearn(self, model, data, device):
        p = self.params
        proxy = data.proxy.images[: p["num_proxy"]]
        if len(proxy) == 0:
            raise UserError(f"no proxy samples of class {data.class_id} in the test split")
        from gan_unlearn.data import to_float

        x = to_float(proxy).to(device)
        hidden = model.head.in_features
        ranking = path_units(model, x, p["top_k"], hidden, p["epsilon"], device).to(device)  # all units, ranked
        h = min(p["top_h"], hidden)
        fc_w, head_w = model.fc.weight.detach().clone(), model.head.weight[data.class_id].detach().clone()
        while True:
            units = ranking[:h]
            with torch.no_grad():
                model.fc.weight.copy_(fc_w)
                model.head.weight[data.class_id] = head_w
                if p["incoming"]:
                    model.fc.weight[units] = self.perturb(fc_w[units])
                model.head.weight[data.class_id, units] = self.perturb(head_w[units])
            if not p["auto_h"] or h >= min(p["max_h"], hidden):
                break
            with torch.no_grad():
                still = (model(x).argmax(1) == data.class_id).float().mean().item()
            if still <= p["proxy_target"]:
                break
            h = min(h + p["h_step"], p["max_h"], hidden)
        self.units = units.cpu()
        self.top_h_used = h


class PathPerturbationFull(PathPerturbation):
    """The paper's cut: the path units' incoming rows as well as their weights to the class."""

    name = "path-perturbation-full"
    defaults = {**PathPerturbation.defaults, "incoming": True}


class PathGaussian(PathPerturbation):
    """Baseline (LRA-NPP): N(0, scale^2) noise added to the paper's path (``path-perturbation-full``'s: the units'
    incoming rows and their weights to the class) instead of zeroing it; with
    ``relative`` the std is scale x the weights' std instead (a much milder perturbation). H is the method's
    fixed ``top_h``: the baselines take the same units as path perturbation's defaults."""

    name = "path-gaussian"
    defaults = {**PathPerturbation.defaults, "auto_h": False, "incoming": True, "scale": 1.0, "relative": False}

    def perturb(self, weights):
        std = self.params["scale"] * (weights.std() if self.params["relative"] else 1.0)
        return weights + torch.randn_like(weights) * std


class PathLaplace(PathPerturbation):
    """Baseline (LRA-NPP): Laplace(0, scale) noise on the same path weights; with ``relative``, Laplace noise
    with the standard deviation of path-gaussian's relative noise."""

    name = "path-laplace"
    defaults = {**PathPerturbation.defaults, "auto_h": False, "incoming": True, "scale": 1.0, "relative": False}

    def perturb(self, weights):
        if self.params["relative"]:
            b = self.params["scale"] * weights.std() / math.sqrt(2)
        else:
            b = torch.tensor(float(self.params["scale"]))
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
def per_sample_sensitivity(model, x: torch.Tensor, class_id: int, chunk: int = 32) -> list[torch.Tensor]:
    """Sum over samples of |d logit_c(x_i) / d w| for every weight tensor (ndim > 1), from per-sample
    gradients: the gradient of the mean logit lets samples' gradients of opposite sign cancel."""
    from torch.func import functional_call, grad, vmap

    names = [n for n, q in model.named_parameters() if q.ndim > 1]
    params = {n: q.detach() for n, q in model.named_parameters()}

    def logit(weights, xi):
        return functional_call(model, {**params, **weights}, (xi[None],))[0, class_id]

    per_sample = vmap(grad(logit), in_dims=(None, 0))
    total = {n: torch.zeros_like(params[n]) for n in names}
    with eval_mode(model):
        for i in range(0, len(x), chunk):
            g = per_sample({n: params[n] for n in names}, x[i:i + chunk])
            for n in names:
                total[n] += g[n].abs().sum(0)
    return [total[n] for n in names]


def repair(model, retain: ImageDataset, steps: int, lr: float, batch_size: int, device) -> None:
    """A short fine-tune on retained data (the other classes' training images), eval-mode BatchNorm-free
    model in train mode for dropout, Adam."""
    from gan_unlearn.data import to_float

    if retain is None or len(retain) == 0:
        raise UserError("repair_steps > 0 needs the retained classes' training data")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(retain), (batch_size,))
        loss = F.cross_entropy(model(to_float(retain.images[idx].to(device))), retain.labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()


class TopK(ClassifierUnlearningMethod):
    """Gaussian noise (std sigma) on the k% of weights most sensitive to the forget data (Zuo et al.):
    sensitivity = sum over the class's training images of |d logit_c / dw| (per-sample gradients), then an
    optional short repair fine-tune on retained data (``repair_steps`` > 0)."""

    name = "topk"
    defaults = {"k_percent": 1.0, "sigma": 0.1, "num_samples": 256, "repair_steps": 0, "repair_lr": 1e-4,
                "repair_batch_size": 128}

    def scores(self, model, x: torch.Tensor, class_id: int) -> torch.Tensor:
        """One score per weight (flattened over the weight tensors); the top k% get the noise."""
        return torch.cat([s.flatten() for s in per_sample_sensitivity(model, x, class_id)])

    def unlearn(self, model, data, device):
        p = self.params
        from gan_unlearn.data import to_float

        if not 0 < p["k_percent"] <= 100:
            raise UserError(f"k_percent must be in (0, 100], not {p['k_percent']}")
        x = to_float(data.forget_train.images[: p["num_samples"]].to(device))
        params = [q for q in model.parameters() if q.ndim > 1]  # weights, not biases
        sens = self.scores(model, x, data.class_id)
        count = max(1, int(len(sens) * p["k_percent"] / 100))
        chosen = sens.topk(count).indices
        noise = torch.zeros_like(sens)
        noise[chosen] = torch.randn(count, device=sens.device) * p["sigma"]
        with torch.no_grad():
            offset = 0
            for q in params:
                q += noise[offset:offset + q.numel()].view_as(q)
                offset += q.numel()
        if p["repair_steps"] > 0:
            repair(model, data.retain, p["repair_steps"], p["repair_lr"], p["repair_batch_size"], device)


class RandomK(TopK):
    """Control: the same noise (and repair) on k% of weights chosen at random."""

    name = "randomk"

    def scores(self, model, x, class_id):
        numel = sum(q.numel() for q in model.parameters() if q.ndim > 1)
        return torch.rand(numel, device=x.device)  # the top k% of random scores: k% of weights at random


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


def adversarial_anchors(model, x, y, per_instance: int, eps: float, steps: int, generator: torch.Generator):
    """``per_instance`` targeted L2-PGD examples per forget instance, each toward a different other class,
    made once from the ORIGINAL model and labelled with their target class (L2UL's retained set: points
    just across the decision boundary, labelled as the attack aimed). Only examples that reach their target
    are kept (an attack that failed leaves an image of the forgotten class labelled as another class, which
    teaches the model to drop the whole class); if none does, all are kept."""
    num_classes = model.head.out_features
    per_instance = min(per_instance, num_classes - 1)
    offsets = torch.stack([torch.randperm(num_classes - 1, generator=generator)[:per_instance] + 1
                           for _ in range(len(y))]).to(y.device)  # (n, per_instance), distinct non-zero offsets
    target = ((y[:, None] + offsets) % num_classes).flatten()
    xr = x.repeat_interleave(per_instance, 0)
    x_adv = targeted_l2_pgd(model, xr, target, eps, steps, 2.5 * eps / steps)
    with torch.no_grad():
        hit = model(x_adv).argmax(1) == target
    if hit.any():
        x_adv, target = x_adv[hit], target[hit]
    return x_adv, target


def mas_importance(model, x) -> list[torch.Tensor]:
    """MAS importance on the forget instances (mean |d ||f(x)||^2 / d theta|), min-max normalised per tensor."""
    model.zero_grad(set_to_none=True)
    model(x).pow(2).sum(1).mean().backward()
    out = []
    for q in model.parameters():
        g = q.grad.abs()
        out.append((g - g.min()) / (g.max() - g.min()).clamp_min(1e-12))
    model.zero_grad(set_to_none=True)
    return out


class L2UL(ClassifierUnlearningMethod):
    """Instance-wise unlearning (Cha et al.): gradient ascent on the forget instances, cross entropy on
    adversarial examples of them made ONCE from the original model (``adv_per_instance`` per instance,
    targeted L2-PGD toward distinct other classes, labelled with their target class), and an anchor
    to the original weights weighted by 1 - MAS importance normalised per tensor; SGD until every forget
    instance is misclassified (or ``max_steps``). It forgets the first ``num_instances`` training images of
    the class, not the class.

    Two options beyond the paper, because on a model that generalises rather than memorises, misclassifying
    typical images of a class drops the whole class (measured: MNIST, 8 instances, 0.2% of the rest of the
    class left): ``ascent="correct"`` stops pushing an instance once it is misclassified (bounded gradient
    ascent), and ``class_anchors`` N adds cross entropy on the N training images of the class that follow
    the forgotten ones (retained data of the same class; ``instance_report`` leaves them out of "rest of
    the class"). With anchors the rest of the class is kept, and the instances move out only part of the way
    (measured on a 1-epoch MNIST oracle, 8 and 32 instances: 50% and 84% still recognised, against 97-98% of the
    class's test images; a model retrained without them would recognise them about as well as those test
    images). ``momentum`` is SGD's, in [0, 1)."""

    name = "l2ul"
    instance_wise = True
    defaults = {"num_instances": 128, "lr": 1e-3, "anchor": 1.0, "pgd_eps": 4.0, "pgd_steps": 20,
                "adv_per_instance": 4, "max_steps": 100, "ascent": "all", "momentum": 0.9,
                "class_anchors": 0}
    choices = {"ascent": ("all", "correct")}
    ranges = {"momentum": (0.0, 0.999)}

    def unlearn(self, model, data, device):
        p = self.params
        from gan_unlearn.data import to_float

        if p["num_instances"] < 1:
            raise UserError(f"l2ul needs num_instances >= 1, not {p['num_instances']}")
        x = to_float(data.forget_train.images[: p["num_instances"]].to(device))
        y = data.forget_train.labels[: p["num_instances"]].to(device)
        keep = data.forget_train.images[p["num_instances"]: p["num_instances"] + max(0, p["class_anchors"])]
        x_keep = to_float(keep.to(device))
        self.class_images_fitted = len(keep)
        y_keep = torch.full((len(keep),), data.class_id, device=device)
        original = [q.detach().clone() for q in model.parameters()]
        anchor_w = [1 - i for i in mas_importance(model, x)]
        x_adv, y_adv = adversarial_anchors(model, x, y, p["adv_per_instance"], p["pgd_eps"], p["pgd_steps"],
                                           torch.Generator().manual_seed(self.seed))
        self.adv_kept = len(y_adv) / (len(y) * min(p["adv_per_instance"], model.head.out_features - 1))
        opt = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])
        self.steps = 0
        for _ in range(p["max_steps"]):
            with torch.no_grad():
                correct = model(x).argmax(1) == y
            if not correct.any():
                break
            if p["ascent"] == "correct":  # only the instances not yet forgotten push further
                ascent = -F.cross_entropy(model(x[correct]), y[correct], reduction="sum") / len(y)
            else:
                ascent = -F.cross_entropy(model(x), y)
            loss = ascent + F.cross_entropy(model(x_adv), y_adv)
            if len(x_keep):  # retained images of the same class keep their label
                loss = loss + F.cross_entropy(model(x_keep), y_keep)
            loss = loss + p["anchor"] * sum((w * (q - o).pow(2)).sum() for w, q, o in
                                            zip(anchor_w, model.parameters(), original))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.steps += 1


METHODS = {cls.name: cls for cls in (PathPerturbation, PathPerturbationFull, PathGaussian, PathLaplace, JiT, TopK, RandomK, L2UL)}


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
    retain = train.subset((train.labels != class_id).nonzero().flatten())
    return ForgetData(class_id, train.subset(tr[torch.randperm(len(tr), generator=g)]), test.subset(te), te, retain)


def unlearn_classifier_checkpoint(model_path, class_id: int, method: str, out, *, params: dict | None = None,
                                  dataset: str | None = None, data_root=None, download: bool = False, device="auto",
                                  seed: int = 0, eval_train_samples: int = 10000) -> dict:
    """Unlearn a class from a classifier checkpoint, write the result to ``out``, return a summary with
    the accuracies, the membership AUC and the Fr / Fs attacks (metrics.attacks) before and after; for an
    instance-wise method also the accuracy on the forgotten instances and on the rest of their class."""
    import time

    from gan_unlearn.checkpoint import (check_dataset_matches, derived_checkpoint, load_checkpoint, restore_model,
                                        save_checkpoint, unlearning_record)
    from gan_unlearn.data import load_dataset
    from gan_unlearn.runtime import resolve_device
    from metrics.classifier_metrics import classifier_report, instance_report

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
    before = classifier_report(model, class_id, sample, eval_test, dev, original=model, seed=seed)
    after = classifier_report(new_model, class_id, sample, eval_test, dev, original=model, seed=seed)
    if unlearner.instance_wise:
        fitted = getattr(unlearner, "class_images_fitted", 0)
        before.update(instance_report(model, data, unlearner.params["num_instances"], eval_test, dev, fitted))
        after.update(instance_report(new_model, data, unlearner.params["num_instances"], eval_test, dev, fitted))
    record = unlearning_record({"kind": "class", "class_id": class_id}, method, model_path, unlearner.params, seconds,
                               zero_shot=unlearner.zero_shot)
    new = derived_checkpoint(ckpt, {"classifier": new_model}, record,
                             metrics={**ckpt.get("metrics", {}), "after_unlearning": after})
    save_checkpoint(out, new)
    return {**record, "before": before, "after": after, "eval_test_size": len(eval_test),
            "eval_train_size": len(sample)}


def _without_proxies(test: ImageDataset, data: ForgetData, unlearner: ClassifierUnlearningMethod) -> ImageDataset:
    """The test set minus the proxy images a zero-shot method looked at."""
    n = unlearner.params.get("num_proxy", 0) if unlearner.zero_shot else 0
    keep = torch.ones(len(test), dtype=torch.bool)
    keep[data.proxy_test_index[:n]] = False
    return test.subset(keep.nonzero().flatten())
