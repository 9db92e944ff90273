"""The relevance engine against hand computations, an independent layer-by-layer LRP implementation,
conservation, and hook hygiene."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gan_unlearn.errors import UserError
from gan_unlearn.models import Classifier, Discriminator, Generator
from gan_unlearn.relevance import RelevanceEngine, unit_relevance


def test_linear_layer_matches_hand_computation():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]]))
        lin.bias.copy_(torch.tensor([0.3, -0.2]))
    x = torch.tensor([[1.0, 2.0, 3.0]])
    with RelevanceEngine(lin, {"fc": lin}, at="input") as eng:
        rel = eng.attribute(x, lambda out: out[:, 1])["fc"]
    assert torch.allclose(rel, torch.tensor([[3.0, 2.0, -3.0]]))  # x_i * W[1, i]
    # LRP-epsilon: R_i = x_i W_ci z_c / (z_c + eps), z_c = 2.0 - 0.2 = 1.8
    with RelevanceEngine(lin, {"fc": lin}, at="input", rule="epsilon", epsilon=0.2) as eng:
        rel = eng.attribute(x, lambda out: out[:, 1])["fc"]
    assert torch.allclose(rel, torch.tensor([[3.0, 2.0, -3.0]]) * 1.8 / 2.0)


class SmallConvNet(nn.Module):
    def __init__(self, bias=True):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1, bias=bias)
        self.conv2 = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=bias)
        self.fc = nn.Linear(4 * 4 * 4, 5, bias=bias)

    def forward(self, x):
        return self.fc(F.relu(self.conv2(F.relu(self.conv1(x)))).flatten(1))


def _stab(z, eps):
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z)


def reference_lrp(net: SmallConvNet, x: torch.Tensor, c: int, eps: float):
    """Explicit LRP through unfolded convolutions, no autograd: relevance of every layer's input."""
    def conv_lrp(conv, a, r_out, z):
        cols = F.unfold(a, 3, padding=conv.padding, stride=conv.stride)          # (N, Cin*9, L)
        s = (r_out / _stab(z, eps)).flatten(2)                                   # (N, Cout, L)
        contrib = cols * (conv.weight.flatten(1).T @ s)                          # (N, Cin*9, L)
        return F.fold(contrib, a.shape[-2:], 3, padding=conv.padding, stride=conv.stride)

    with torch.no_grad():
        z1 = net.conv1(x)
        a1 = F.relu(z1)
        z2 = net.conv2(a1)
        a2 = F.relu(z2).flatten(1)
        z3 = net.fc(a2)
        r3 = torch.zeros_like(z3)
        r3[:, c] = z3[:, c]
        r_a2 = a2 * ((r3 / _stab(z3, eps)) @ net.fc.weight)
        r_a1 = conv_lrp(net.conv2, a1, r_a2.view_as(z2), z2)
        r_x = conv_lrp(net.conv1, x, r_a1, z1)
    return {"fc": r_a2, "conv2": r_a1.flatten(2).sum(2), "conv1": r_x.flatten(2).sum(2)}


@pytest.mark.parametrize("rule,eps", [("grad_x_act", 0.0), ("epsilon", 0.1), ("epsilon", 1.0)])
def test_conv_net_matches_independent_lrp_in_float64(rule, eps):
    torch.manual_seed(0)
    net = SmallConvNet().double()
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    ref = reference_lrp(net, x, c=2, eps=eps)
    with RelevanceEngine(net, ["fc", "conv2", "conv1"], at="input", rule=rule, epsilon=eps) as eng:
        got = eng.attribute(x, lambda out: out[:, 2])
    for name in ("fc", "conv2", "conv1"):
        torch.testing.assert_close(got[name], ref[name], rtol=0, atol=1e-6)
    # taking a layer's output gives the relevance the next layer receives (conv1's output feeds conv2)
    with RelevanceEngine(net, ["conv1"], at="output", rule=rule, epsilon=eps) as eng:
        out_rel = eng.attribute(x, lambda out: out[:, 2])["conv1"]
    torch.testing.assert_close(out_rel, ref["conv2"], rtol=0, atol=1e-6)


def test_conservation_in_a_bias_free_relu_net():
    torch.manual_seed(1)
    net = SmallConvNet(bias=False).double()
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    with RelevanceEngine(net, ["fc", "conv2", "conv1"], at="input") as eng:
        rel = eng.attribute(x, lambda out: out[:, 0])
    target = net(x)[:, 0].detach()
    for name in ("fc", "conv2", "conv1"):
        torch.testing.assert_close(rel[name].sum(1), target, rtol=1e-9, atol=1e-9)


def test_hooks_are_removed_after_the_block_and_after_an_exception():
    net = SmallConvNet()

    def hook_count():
        return sum(len(m._forward_hooks) for m in net.modules())

    with RelevanceEngine(net, ["fc"], rule="epsilon") as eng:
        assert hook_count() > 0
        eng.attribute(torch.randn(1, 2, 8, 8), lambda o: o[:, 0])
    assert hook_count() == 0
    with pytest.raises(ZeroDivisionError):
        with RelevanceEngine(net, ["fc", "conv1"], rule="epsilon"):
            assert hook_count() > 0
            raise ZeroDivisionError
    assert hook_count() == 0
    net(torch.randn(1, 2, 8, 8)).sum().backward()  # the network still works normally


def test_dcgan_generator_and_discriminator_channels():
    torch.manual_seed(0)
    G, D = Generator(28, 1, latent_dim=8, width=4), Discriminator(28, 1, width=4)
    z = torch.randn(5, 8)
    rel = unit_relevance(G, "net.3", z, lambda img: img.flatten(1).sum(1), at="output")  # ConvTranspose channels
    assert rel.shape == (8,) and torch.isfinite(rel).all()
    rel_d = unit_relevance(D, "net.2", G(z).detach(), lambda s: s, rule="epsilon")
    assert rel_d.shape == (8,) and torch.isfinite(rel_d).all()
    per_sample = unit_relevance(G, "net.0", z, lambda img: img.mean((1, 2, 3)), reduce="none", batch_size=2)
    assert per_sample.shape == (5, 16)


def test_classifier_hidden_units_and_bad_input():
    C = Classifier(28, 1, hidden=16)
    x = torch.randn(4, 1, 28, 28)
    rel = unit_relevance(C, C.head, x, lambda logits: logits[:, 3], at="input", rule="epsilon")
    assert rel.shape == (16,)
    with pytest.raises(UserError, match="no layer named 'nope'"):
        RelevanceEngine(C, ["nope"])
    with pytest.raises(UserError, match="unknown relevance rule"):
        RelevanceEngine(C, ["head"], rule="lrp-gamma")
    with pytest.raises(UserError, match="one scalar per sample"):
        with RelevanceEngine(C, ["head"]) as eng:
            eng.attribute(x, lambda logits: logits)
