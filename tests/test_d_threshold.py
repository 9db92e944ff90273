"""D's decision threshold on item requests (calibrate_d): continued GAN training moves all of D's logits
together, which moves its acceptance of held-out real images without D having learnt anything about the
forgotten items. The checks read D, and the run hands D back, with the threshold placed among retained
training images where the original's sat (their median logit); ranks and AUCs stay. Oracles: a pure shift of D's
output bias."""

import pytest
import torch

from gan_unlearn.forget import ForgetRequest
from metrics.forgetting import discriminator_logits
from trainers.unlearning import METHODS, UnlearnConfig

from .test_cascaded import FAST  # the tiny cascade's config, the generator gate off

ITEMS = ForgetRequest.for_items(range(0, 256, 8))


@pytest.fixture(scope="module")
def tiny(tiny_unlearning_inputs):
    return tiny_unlearning_inputs


def _method(tiny, **options):
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ITEMS, train, UnlearnConfig.of(**FAST, **options), oracle=C, held_out=test)
    m.set_threshold_reference()
    base = m.forget_metric()
    m.reference = {"shares": base["shares"].tolist(), "d_real_accuracy": base["d_real_accuracy"]}
    return m, base


def _move_output_bias(D, by: float) -> None:
    with torch.no_grad():
        [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)][-1].bias += by


def test_the_original_d_needs_no_shift(tiny):
    m, base = _method(tiny)
    assert m.threshold_shift() == 0.0 and base["d_threshold_shift"] == 0.0
    assert m.threshold_logit == discriminator_logits(m.D, m.calibration_images).median().item()


def test_a_d_whose_logits_all_fell_together_reads_as_the_original_only_when_calibrated(tiny):
    """Every logit 4 lower (the threshold moved, nothing learnt): calibrated, the check reads the original's
    acceptance, scores and AUC, and finds nothing degenerate; uncalibrated, D seems to reject held-out real
    images and the guard would call the state degenerate."""
    for calibrate in (True, False):
        m, base = _method(tiny, calibrate_d=calibrate)
        _move_output_bias(m.D, -4.0)
        now = m.forget_metric()
        assert now["d_auc"] == pytest.approx(base["d_auc"], abs=1e-6)  # ranks never move
        if calibrate:
            assert now["d_threshold_shift"] == pytest.approx(4.0, abs=1e-4)
            assert now["d_real_accuracy"] == pytest.approx(base["d_real_accuracy"], abs=1e-6)
            assert now["d_score_held_out"] == pytest.approx(base["d_score_held_out"], abs=1e-5)
            assert now["degenerate"] is None
        else:
            assert "d_threshold_shift" not in now
            assert now["d_real_accuracy"] < base["d_real_accuracy"] - 0.1
            assert "D accepts" in now["degenerate"]


def test_a_d_that_learnt_to_reject_unseen_images_stays_degenerate_when_calibrated(tiny):
    """The threshold is set on retained training images, so a D that keeps accepting them but now rejects
    unseen real images (the fake label spreading beyond the items) is still caught."""
    m, base = _method(tiny)
    inner = m.D
    calibration = m.calibration_images

    class RejectsUnseen(torch.nn.Module):
        def forward(self, x):
            logits = inner(x)
            seen = (x.flatten(1)[:, None, :] == calibration.flatten(1)[None]).all(-1).any(1)
            return torch.where(seen, logits, logits - 6.0)

    m.D = RejectsUnseen()
    now = m.forget_metric()
    assert now["d_threshold_shift"] == pytest.approx(0.0, abs=1e-6)
    assert now["d_real_accuracy"] < base["d_real_accuracy"] - 0.1 and "D accepts" in now["degenerate"]


def test_reset_threshold_bakes_the_shift_into_d(tiny):
    m, _ = _method(tiny)
    original = discriminator_logits(m.D, m.calibration_images)
    _move_output_bias(m.D, 2.5)
    assert m.reset_threshold() == pytest.approx(-2.5, abs=1e-4)
    assert torch.allclose(discriminator_logits(m.D, m.calibration_images), original, atol=1e-4)
    assert m.threshold_shift() == pytest.approx(0.0, abs=1e-4)


def test_a_run_hands_back_d_with_the_originals_median_logit_on_retained_images(tiny):
    """Ten rounds of the cascade at the default rates move D's logits; the D handed back has the original's
    median logit on the calibration images, and the summary records the shift. Without calibration no shift
    is applied or recorded."""
    for calibrate in (True, False):
        G, D, C, train, test = tiny
        m = METHODS["cascaded"](G, D, ITEMS, train, UnlearnConfig.of(**FAST, max_rounds=10, min_rounds=10,
                                                                     calibrate_d=calibrate),
                                oracle=C, held_out=test, show_progress=False)
        r = m.run()
        if calibrate:
            shift = r.summary["d_threshold_shift"]
            assert isinstance(shift, float) and abs(shift) > 0.01
            median = discriminator_logits(r.discriminator, m.calibration_images).median().item()
            assert median == pytest.approx(discriminator_logits(D, m.calibration_images).median().item(), abs=1e-4)
        else:
            assert r.summary["d_threshold_shift"] is None and m.calibration_images is None


def test_a_run_that_ends_unhealthy_hands_back_the_restored_d_with_the_shift_it_records(tiny):
    """Every check drifts past the guard: three steps back, four rounds of training, then the original state is
    restored at the end. The D handed back is then the original's, so its recorded shift must be 0 (a reset
    baked before the restore would be overwritten while the summary still reported it: checked by mutation). D's
    finish is off here: it would train the restored D (tests/test_item_criteria.py covers that order)."""
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ITEMS, train, UnlearnConfig.of(**FAST, max_rounds=10, min_rounds=2, check_every=2,
                                                                 item_d_finish=0),
                            oracle=C, held_out=test, show_progress=False)
    m.preservation_drift = lambda generator=None: 99.0
    r = m.run()
    assert r.summary["restored_healthy_state"]["round"] == 0 and r.summary["d_threshold_shift"] == 0.0
    for k, v in D.state_dict().items():
        torch.testing.assert_close(r.discriminator.state_dict()[k], v, rtol=0, atol=0, msg=k)


class _OutputRegisteredFirst(torch.nn.Module):
    """A D whose output layer is registered before its body: the last layer registered is not the last to run."""

    def __init__(self, body_out: int = 8):
        super().__init__()
        self.head = torch.nn.Linear(body_out, 1)
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(body_out), torch.nn.ReLU())

    def forward(self, x):
        return self.head(self.body(x)).flatten()


def test_the_output_layer_is_the_last_layer_to_run_and_a_bias_there_shifts_every_logit(tiny):
    """Oracle: adding b to the found layer's bias adds exactly b to every logit. The project's D gives its last
    convolution; a D that registers its head first gives the head, not the body's linear layer."""
    from trainers.unlearning.base import output_layer

    G, D, C, train, test = tiny
    x = train.batch(torch.arange(6))
    for model, expected in ((D, [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)][-1]),
                            (_OutputRegisteredFirst(), None)):
        model.eval()
        before = model(x).detach()
        layer = output_layer(model, x)
        assert layer is (expected if expected is not None else model.head)
        with torch.no_grad():
            layer.bias += 1.5
        torch.testing.assert_close(model(x).detach(), before + 1.5)
        with torch.no_grad():
            layer.bias -= 1.5


class _DoubledInPlace(torch.nn.Module):
    """Doubles its input in place: after the output layer, it changes that layer's output tensor itself."""

    def forward(self, x):
        return x.mul_(2.0)


def test_a_d_whose_bias_cannot_carry_the_threshold_is_refused_before_any_work(tiny):
    """A final sigmoid or an in-place scaling (the bias no longer shifts the output by itself; the in-place one
    also rewrites the output layer's own output, so it is caught only on a copy of it) or an output layer
    without a bias: a one-line UserError when the method is built, not at the end of a run, naming the option
    that needs the layer (calibrate_d, then item_d_finish_head, which trains that layer alone); without both it
    is built."""
    from gan_unlearn.errors import UserError

    G, D, C, train, test = tiny
    no_bias = _OutputRegisteredFirst()
    no_bias(train.batch(torch.arange(2)))  # materialise the lazy layer
    no_bias.head = torch.nn.Linear(8, 1, bias=False)
    for bad in (torch.nn.Sequential(D, torch.nn.Sigmoid()), no_bias, torch.nn.Sequential(D, _DoubledInPlace())):
        with pytest.raises(UserError, match="calibrate_d"):
            METHODS["cascaded"](G, bad, ITEMS, train, UnlearnConfig.of(**FAST), oracle=C, held_out=test)
        with pytest.raises(UserError, match="item_d_finish_head"):
            METHODS["cascaded"](G, bad, ITEMS, train, UnlearnConfig.of(**FAST, calibrate_d=False), oracle=C,
                                held_out=test)
        METHODS["cascaded"](G, bad, ITEMS, train, UnlearnConfig.of(**FAST, calibrate_d=False,
                                                                   item_d_finish_head=False), oracle=C, held_out=test)
