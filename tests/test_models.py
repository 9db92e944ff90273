import pytest
import torch
from torch.nn import functional as F

from gan_unlearn.errors import UserError
from gan_unlearn.models import Classifier, Discriminator, Generator, LatentProjection, build_model
from gan_unlearn.runtime import frozen
from trainers.gan import gan_step, make_optimizer


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3)])
def test_generator_and_discriminator_shapes(size, channels):
    G, D = Generator(size, channels, latent_dim=16, width=8), Discriminator(size, channels, width=8)
    images = G(torch.randn(5, 16))
    assert images.shape == (5, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    assert D(images).shape == (5,)


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3)])
def test_classifier_shapes_and_features(size, channels):
    C = Classifier(size, channels, num_classes=7, hidden=20)
    x = torch.randn(3, channels, size, size)
    assert C(x).shape == (3, 7)
    assert C.features(x).shape == (3, 20)
    C.eval()
    assert torch.allclose(C.head(C.features(x)), C(x))  # features feed the last linear layer


def test_dcgan_init_statistics():
    G = Generator(28, 1, width=64)
    conv = G.net[3].weight
    bn = G.net[1].weight
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    assert abs(bn.mean().item() - 1.0) < 0.01


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3)])
def test_one_training_step_changes_both_networks_and_lowers_d_loss(size, channels):
    torch.manual_seed(0)
    G, D = Generator(size, channels, latent_dim=16, width=8), Discriminator(size, channels, width=8)
    og, od = make_optimizer(G.parameters(), 2e-3, 0.5, 0.999), make_optimizer(D.parameters(), 2e-3, 0.5, 0.999)
    real = torch.rand(16, channels, size, size) * 2 - 1
    g0 = [p.clone() for p in G.parameters()]
    d0 = [p.clone() for p in D.parameters()]
    losses = [gan_step(G, D, og, od, real, torch.randn(16, 16), torch.device("cpu"), "fp32")["loss_d"]
              for _ in range(5)]
    assert any(not torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, D.parameters()))
    assert losses[-1] < losses[0]


def test_build_model_round_trip_and_unknown_arch():
    G = Generator(32, 3, latent_dim=10, width=4)
    H = build_model(G.spec())
    H.load_state_dict(G.state_dict())
    z = torch.randn(2, 10)
    G.eval(), H.eval()
    assert torch.equal(G(z), H(z))
    with pytest.raises(UserError, match="unknown architecture"):
        build_model({"arch": "resnet-9000"})
    with pytest.raises(UserError, match="28x28 and 32x32"):
        Generator(64, 3)


def test_generate_images_is_seeded_and_batch_size_independent():
    G = Generator(28, 1, latent_dim=8, width=4)
    a = G.generate_images(7, seed=3, batch_size=7)
    b = G.generate_images(7, seed=3, batch_size=2)
    c = G.generate_images(7, seed=4)
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c)
    assert G.training  # mode restored


def test_classifier_learns_a_separable_toy_problem():
    torch.manual_seed(0)
    C = Classifier(28, 1, num_classes=2, hidden=16, dropout=0.0)
    x = torch.randn(64, 1, 28, 28)
    y = (x[:, 0, :14].mean((1, 2)) > x[:, 0, 14:].mean((1, 2))).long()
    opt = torch.optim.Adam(C.parameters(), 1e-2)
    for _ in range(60):
        loss = F.cross_entropy(C(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
    assert (C(x).argmax(1) == y).float().mean() > 0.95


@pytest.mark.parametrize("kernel,bias", [(7, False), (4, True)])
def test_latent_projection_matches_the_transposed_convolution_in_values_and_gradients(kernel, bias):
    torch.manual_seed(0)
    layer = LatentProjection(10, 6, kernel, 1, 0, bias=bias).double()
    if bias:
        torch.nn.init.normal_(layer.bias)
    z = torch.randn(3, 10, 1, 1, dtype=torch.float64, requires_grad=True)
    fast = layer(z)
    reference = torch.nn.functional.conv_transpose2d(z, layer.weight, layer.bias, 1, 0)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-12)
    upstream = torch.randn_like(reference)
    grads_fast = torch.autograd.grad((fast * upstream).sum(), (z, layer.weight))
    grads_ref = torch.autograd.grad((reference * upstream).sum(), (z, layer.weight))
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    wider = torch.randn(2, 10, 2, 2, dtype=torch.float64)  # not a latent: the convolution route
    torch.testing.assert_close(layer(wider), torch.nn.functional.conv_transpose2d(wider, layer.weight, layer.bias))


def test_frozen_blocks_weight_gradients_passes_input_gradients_and_restores_each_flag():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    net[1].bias.requires_grad_(False)  # a setting of the caller's that must survive
    x = torch.randn(5, 3, requires_grad=True)
    with frozen(net):
        net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(RuntimeError), frozen(net):
        raise RuntimeError("inside the block")
    assert [p.requires_grad for p in net.parameters()] == [True, True, True, False]


def test_make_optimizer_takes_the_same_steps_as_the_default_adam():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    b.load_state_dict(a.state_dict())
    start = a.weight.detach().clone()
    fast, reference = make_optimizer(a.parameters(), 2e-4, 0.5, 0.999), torch.optim.Adam(b.parameters(), lr=2e-4, betas=(0.5, 0.999))
    for _ in range(5):
        x = torch.randn(8, 6)
        for net, opt in ((a, fast), (b, reference)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    assert (a.weight - start).abs().max() > 1e-4  # the steps did move the weights
