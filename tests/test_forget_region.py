"""The forgotten region (substitution for any latent, not only the pool's): tiny constructed cases whose answer
is known, and the cascade's fresh-latent loss against a brute-force computation on the tiny trained models."""

import copy

import pytest
import torch
from torch.nn import functional as F

from gan_unlearn.checkpoint import load_checkpoint, restore_model
from gan_unlearn.data import load_dataset
from gan_unlearn.forget import ForgetRequest
from trainers.latents import ForgetRegion, LatentPool, class_forget_mask, class_threshold_for, item_forget_latents
from trainers.unlearning import CascadedUnlearning, UnlearnConfig

from .test_cascaded import FAST


class _SignOracle(torch.nn.Module):
    """Features are the image's first pixel; class 0 where it is positive, class 1 where negative."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[20.0], [-20.0]]))
            self.head.bias.zero_()

    def features(self, x):
        return x.flatten(1)[:, :1]


def _pool(n=200, seed=0):
    """A 'generator' that copies the latent into a 1x2x2 image: class 0 exactly where z[0] > 0."""
    z = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    images = z.view(n, 1, 2, 2).clone()
    return LatentPool(z, images, images.flatten(1)[:, :1])


def test_a_latent_in_the_forgotten_class_region_maps_to_the_nearest_retained_pool_image():
    pool, oracle = _pool(), _SignOracle()
    forgotten, retained = class_forget_mask(pool, oracle, 0, 0.5)
    region = ForgetRegion.for_class(pool, retained, oracle, 0, 0.5)
    fresh = _pool(50, seed=1)  # latents the pool never drew
    inside = region.contains(fresh.features)
    assert torch.equal(inside, fresh.z[:, 0] > 0)  # the class's region, away from the boundary's few units
    assert torch.equal(region.contains(pool.features), forgotten)  # the same rule that chose the pool's latents
    subs = region.substitutes(fresh.z[inside], fresh.features[inside])
    candidates = retained.nonzero().flatten()
    for z, s in zip(fresh.z[inside], subs):
        best = candidates[((pool.z[candidates] - z) ** 2).sum(1).argmin()]
        assert torch.equal(s, pool.images[best])
    assert not region.contains(subs.flatten(1)[:, :1]).any()  # every substitute shows retained content


class _UnsureOracle(_SignOracle):
    """As _SignOracle over three classes, never above 0.4 for any: the weak oracle of a blurry generator."""

    num_classes = 3

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(1, 3)
        with torch.no_grad():  # softmax of (x, -x, 0) / 20: the top class below 0.4 for every |x| < 4
            self.head.weight.copy_(torch.tensor([[0.05], [-0.05], [0.0]]))
            self.head.bias.zero_()


class _ScaledOracle(_SignOracle):
    """Three classes, logits (w x, -w x, 0): class 0 is predicted for x > 0 and above 0.5 only where
    sinh(w x) > 1/2, i.e. for 63% of the positive pixels of a standard normal at w = 1, 34% at w = 1/2."""

    num_classes = 3

    def __init__(self, w: float):
        super().__init__()
        self.head = torch.nn.Linear(1, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[w], [-w], [0.0]]))
            self.head.bias.zero_()


def test_the_fallback_reads_the_share_of_the_predicted_class_that_the_threshold_keeps():
    pool = _pool(2000)
    for w, share, expected in ((1.0, 0.63, 0.5), (0.5, 0.34, 0.0)):
        probs = torch.softmax(_ScaledOracle(w).head(pool.features), 1)
        predicted = probs.argmax(1) == 0
        kept = (probs[:, 0] > 0.5).sum() / predicted.sum()
        assert abs(kept.item() - share) < 0.05  # the share the docstring computes
        assert class_threshold_for(pool, _ScaledOracle(w), 0, 0.5, 0.5) == expected
    # below 0.5 a latent predicted as another class can pass the threshold too: it does not count as kept
    probs = torch.tensor([[0.45, 0.35, 0.20], [0.38, 0.34, 0.28],  # predicted 0: kept at 0.4, not kept
                          [0.42, 0.48, 0.10], [0.42, 0.48, 0.10],  # predicted 1, yet above 0.4 for class 0
                          *[[0.1, 0.1, 0.8]] * 4])
    identity = _UnsureOracle()
    identity.head = torch.nn.Linear(3, 3)
    with torch.no_grad():
        identity.head.weight.copy_(torch.eye(3))
        identity.head.bias.zero_()
    logits = LatentPool(torch.zeros(8, 4), torch.zeros(8, 1, 2, 2), probs.log())
    assert class_threshold_for(logits, identity, 0, 0.4, 0.75) == 0.0  # keeps 1 of 2, not 3 of 2
    # the predicted class over half the pool: no fallback (too few retained latents to substitute with)
    shifted = _ScaledOracle(0.5)
    with torch.no_grad():
        shifted.head.bias[0] = 0.5
    assert (torch.softmax(shifted.head(pool.features), 1).argmax(1) == 0).float().mean() > 0.5
    assert class_threshold_for(pool, shifted, 0, 0.5, 0.5) == 0.5


def test_an_unsure_oracle_marks_its_predicted_class_and_a_sure_one_its_probability_above_one_half():
    pool, unsure, sure = _pool(), _UnsureOracle(), _SignOracle()
    probs = torch.softmax(unsure.head(pool.features), 1)
    assert probs.max() < 0.4 and (probs.argmax(1) == 0).any()
    assert not class_forget_mask(pool, unsure, 0, 0.5)[0].any()  # a fixed 0.5 finds nothing to forget
    s = UnlearnConfig().substitution
    threshold = class_threshold_for(pool, unsure, 0, s.class_threshold, s.class_fallback)
    assert threshold == 0.0
    assert class_threshold_for(pool, unsure, 0, s.class_threshold, 0.0) == 0.5  # no fallback: 0.5 whatever it finds
    forgotten, retained = class_forget_mask(pool, unsure, 0, threshold)
    assert torch.equal(forgotten, pool.z[:, 0] > 0) and torch.equal(retained, ~forgotten)  # the predicted class
    region = ForgetRegion.for_class(pool, retained, unsure, 0, threshold)
    fresh = _pool(50, seed=1)
    assert torch.equal(region.contains(fresh.features), fresh.z[:, 0] > 0)  # the same rule beyond the pool
    # the sure oracle (two classes) gives its predicted class above 0.5 every time: 0.5 stays
    assert class_threshold_for(pool, sure, 0, s.class_threshold, s.class_fallback) == 0.5


def test_the_item_region_is_the_pools_neighbour_rule_extended_to_any_latent():
    pool = _pool(300)
    items = pool.features[:5] + 0.01  # forgotten items next to five pool samples
    idx, _, retained = item_forget_latents(pool, items, 3)
    region = ForgetRegion.for_items(pool, retained, items, 3)
    assert torch.equal(region.contains(pool.features), ~retained)  # exactly the pool's forgotten latents
    assert region.contains(items).all()  # the items themselves are inside
    far = items + 100.0
    assert not region.contains(far).any()


def test_nearest_real_substitution_of_fresh_latents_uses_the_nearest_real_image_in_features():
    pool = _pool()
    _, retained = class_forget_mask(pool, _SignOracle(), 0, 0.5)
    region = ForgetRegion.for_class(pool, retained, _SignOracle(), 0, 0.5)
    real = -torch.rand(30, 1, 2, 2, generator=torch.Generator().manual_seed(3))
    region.real_images, region.real_features = real, real.flatten(1)[:, :1]
    f = torch.tensor([[-0.5], [-0.1]])
    got = region.substitutes(torch.zeros(2, 4), f)
    for row, fi in zip(got, f):
        assert torch.equal(row, real[(region.real_features - fi).abs().flatten().argmin()])


@pytest.fixture(scope="module")
def tiny_models(tiny_gan_ckpt, tiny_oracle_ckpt, data_root):
    ck = load_checkpoint(tiny_gan_ckpt)
    return (restore_model(ck, "generator"), restore_model(ck, "discriminator"),
            restore_model(load_checkpoint(tiny_oracle_ckpt), "classifier"),
            load_dataset("mnist[:512]", "train", data_root))


def test_fresh_latents_in_the_region_are_pulled_to_substitutes_and_the_rest_to_the_original(tiny_models):
    G, D, C, train = tiny_models
    z = G.sample_latents(256, torch.Generator().manual_seed(7))
    with torch.no_grad():
        reference = G.eval()(z).float()
        probs = F.softmax(C.eval()(reference), dim=1)
    # the tiny oracle is unsure of the tiny GAN's blobs and may call them all one class: forget the likeliest
    # class that is not every sample's top class, with its median probability as the threshold (half inside)
    mean = probs.mean(0)
    mean[torch.bincount(probs.argmax(1), minlength=probs.shape[1]) == len(z)] = -1
    cls = int(mean.argmax())
    threshold = probs[:, cls].median().item()
    config = UnlearnConfig.of(**FAST, fresh=True, class_threshold=threshold, class_fallback=0.0)
    u = CascadedUnlearning(G, D, ForgetRequest.for_class(cls), train, config, oracle=C)
    u.prepare()
    inside = probs[:, cls] > threshold
    assert torch.equal(u.region.contains(C.features(reference)), inside)
    assert inside.any() and (~inside).any()  # the tiny GAN draws its top class and others
    # at the original generator, only the region's latents contribute: their distance to their substitutes
    k = u.config.cascade
    loss = u.fresh_targets_loss(z, reference, F.mse_loss)
    subs = u.region.substitutes(z[inside], C.features(reference[inside]))
    assert loss.item() == pytest.approx(k.lambda_sub * F.mse_loss(reference[inside], subs).item(), rel=1e-5)
    # a retained latent's output moved away from the original costs preservation; a region latent's does not
    moved = reference.clone()
    outside = (~inside & (probs.argmax(1) != cls)).nonzero().flatten()[0]  # preserved
    moved[outside] += 0.5
    assert u.fresh_targets_loss(z, moved, F.mse_loss) > loss
    # without fresh substitution the region's latents are left to the adversarial loss (no target)
    plain = CascadedUnlearning(G, D, ForgetRequest.for_class(cls), train,
                               UnlearnConfig.of(**FAST, class_threshold=threshold), oracle=C)
    plain.prepare()
    assert plain.region is None and plain.fresh_targets_loss(z, reference, F.mse_loss).item() == 0.0


def test_the_cascade_falls_back_to_the_predicted_class_where_its_threshold_keeps_too_few(tiny_models):
    G, D, C, train = tiny_models
    # the tiny oracle calls every blob of the tiny GAN its top class, at about 0.2: an unsure oracle. Shift the
    # runner-up's bias by the 40th percentile of the logit gap: it is predicted for 40% of samples, below 0.5.
    with torch.no_grad():
        logits = C.eval()(G.eval()(G.sample_latents(4096, torch.Generator().manual_seed(7))))
        top, second = logits.mean(0).topk(2).indices.tolist()
        oracle = copy.deepcopy(C)
        oracle.head.bias[second] += (logits[:, top] - logits[:, second]).quantile(0.4)
        assert torch.softmax(oracle(G(G.sample_latents(512, torch.Generator().manual_seed(8)))), 1).max() < 0.5
    counts, methods = {}, {}
    for fallback in (0.5, 0.0):
        config = UnlearnConfig.of(**FAST, class_fallback=fallback, fresh=True)  # class_threshold: the default 0.5
        methods[fallback] = CascadedUnlearning(G, D, ForgetRequest.for_class(second), train, config, oracle=oracle)
        counts[fallback] = methods[fallback].prepare()
    fell_back, fixed = counts[0.5], counts[0.0]
    # fresh latents meet the same rule as the pool's: the predicted class where the cascade fell back
    with torch.no_grad():
        features = oracle.features(G(G.sample_latents(256, torch.Generator().manual_seed(9))))
        predicted = oracle.head(features).argmax(1) == second
    assert predicted.any() and (~predicted).any()
    assert torch.equal(methods[0.5].region.contains(features), predicted)
    assert not methods[0.0].region.contains(features).any()
    assert fell_back["class_threshold_used"] == 0.0 and fixed["class_threshold_used"] == 0.5
    assert fixed["forgotten_latents"] == 0  # 0.5 finds nothing of the class to forget
    assert 0.3 < fell_back["forgotten_latents"] / fell_back["pool_size"] < 0.5
