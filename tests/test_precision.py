"""``auto`` precision: bf16 only where the hardware runs it natively, fp32 otherwise; recorded in checkpoints.

The CPU capability probe is mocked for both outcomes, so these tests mean the same on any machine."""

import pytest
import torch

from gan_unlearn import runtime
from gan_unlearn.checkpoint import load_checkpoint
from gan_unlearn.data import load_dataset
from gan_unlearn.errors import UserError
from trainers.gan import GANConfig, train_gan

AVX2_ONLY = {"model": "AMD EPYC 7B12", "architecture": "x86_64", "avx2": True, "avx512_f": False,
             "avx512_bf16": False, "amx_tile": False, "amx_bf16": False, "bf16": False, "sve_bf16": False}


def with_features(**features) -> dict:
    return {**AVX2_ONLY, "model": "Test CPU", **features}


@pytest.mark.parametrize("caps, expected", [
    (AVX2_ONLY, "fp32"),
    (with_features(avx512_f=True), "fp32"),  # AVX-512 without its bf16 extension still emulates bf16
    (with_features(avx512_f=True, avx512_bf16=True), "bf16"),
    (with_features(amx_tile=True, amx_bf16=True), "bf16"),
    (with_features(architecture="aarch64", avx2=False, bf16=True), "bf16"),
])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, caps, expected):
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: caps)
    precision, reason = runtime.resolve_precision("auto", "cpu")
    assert precision == expected
    assert reason.startswith("auto:") and caps["model"] in reason
    assert ("no native bf16" in reason) == (expected == "fp32")


@pytest.mark.parametrize("limit", ["ATen kernels run at AVX2", "ONEDNN_MAX_CPU_ISA=AVX2"])
def test_auto_is_fp32_where_the_process_caps_its_kernels_below_bf16(monkeypatch, limit):
    """A bf16-capable CPU whose kernels are capped (the stand-in for an AVX2-only CPU) gets fp32."""
    monkeypatch.setattr(runtime, "cpu_capabilities",
                        lambda: with_features(avx512_f=True, avx512_bf16=True, kernel_limit=limit))
    precision, reason = runtime.resolve_precision("auto", "cpu")
    assert precision == "fp32" and limit in reason and "no native bf16" in reason


@pytest.mark.parametrize("capability, env, expected", [
    ("AVX512", {}, None),
    ("AVX2", {}, "ATen kernels run at AVX2"),
    ("DEFAULT", {}, "ATen kernels run at DEFAULT"),
    ("AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "ONEDNN_MAX_CPU_ISA=AVX2"),
    ("AVX512", {"DNNL_MAX_CPU_ISA": "avx512_core"}, "DNNL_MAX_CPU_ISA=avx512_core"),
    ("AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, None),
    ("AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, None),
    ("AVX512", {"ONEDNN_MAX_CPU_ISA": "ALL"}, None),
    ("AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_FP16"}, None),  # above BF16 in oneDNN's order
    ("AVX512", {"ONEDNN_MAX_CPU_ISA": "ALL", "DNNL_MAX_CPU_ISA": "AVX2"}, None),  # oneDNN reads ONEDNN_ first
    ("AVX512", {"ONEDNN_MAX_CPU_ISA": "FANCY"}, "ONEDNN_MAX_CPU_ISA=FANCY"),  # unknown: the safe side
])
def test_kernel_isa_limits_are_read_from_torch_and_onednn(capability, env, expected):
    assert runtime.kernel_isa_limit(capability, "x86_64", env) == expected
    assert runtime.kernel_isa_limit("DEFAULT", "aarch64", env) is None  # ARM: the features decide


@pytest.mark.parametrize("supported, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_follows_the_gpu(monkeypatch, supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Test GPU")
    assert runtime.resolve_precision("auto", torch.device("cuda", 0))[0] == expected


@pytest.mark.parametrize("explicit", ["fp32", "bf16"])
def test_explicit_choices_are_kept_whatever_the_cpu(monkeypatch, explicit):
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: AVX2_ONLY)
    assert runtime.resolve_precision(explicit, "cpu") == (explicit, f"{explicit} requested")


def test_unknown_precision_is_a_user_error():
    with pytest.raises(UserError, match="auto, fp32, bf16"):
        runtime.resolve_precision("fp16", "cpu")


def test_every_precision_has_a_help_text():
    assert list(runtime.PRECISIONS) == ["auto", "fp32", "bf16"]
    assert all(isinstance(text, str) and text for text in runtime.PRECISIONS.values())


def test_the_real_probe_reports_the_features_it_names():
    caps = runtime.cpu_capabilities()
    assert set(runtime.CPU_FEATURES) <= set(caps) and caps["model"]
    assert all(isinstance(caps[name], bool) for name in runtime.CPU_FEATURES)


def test_autocast_resolves_auto(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: AVX2_ONLY)
    with runtime.autocast(torch.device("cpu"), "auto"):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: with_features(avx512_bf16=True))
    with runtime.autocast(torch.device("cpu"), "auto"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


@pytest.mark.parametrize("value, precision, expected", [
    ("auto", "bf16", True), ("auto", "fp32", True), (True, "fp32", True), (False, "bf16", False)])
def test_channels_last_auto_on_cpu(value, precision, expected):
    chosen, reason = runtime.resolve_channels_last(value, "cpu", precision)
    assert chosen is expected and reason


@pytest.mark.parametrize("caps, expected", [(AVX2_ONLY, "fp32"), (with_features(avx512_bf16=True), "bf16")])
def test_the_gan_checkpoint_records_the_choice_and_its_reason(monkeypatch, tmp_path, data_root, caps, expected):
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: caps)
    data = load_dataset("mnist[:64]", "train", data_root)
    train_gan(data, GANConfig(epochs=1, batch_size=32, width=4), torch.device("cpu"), tmp_path / "g.pt",
              show_progress=False)
    ckpt = load_checkpoint(tmp_path / "g.pt", kind="gan")
    assert ckpt["config"]["precision"] == "auto"  # the recipe: a retrain decides again on its own machine
    run = ckpt["runtime"]
    assert run["precision"] == expected and run["precision_requested"] == "auto"
    assert run["precision_reason"] == runtime.resolve_precision("auto", "cpu")[1]
    assert run["channels_last"] is True and run["channels_last_reason"].startswith("auto:")
    assert run["processes"] == 1 and run["cpu"]["model"] == caps["model"]


def test_native_bf16_that_measures_slower_is_not_chosen(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: with_features(avx512_f=True, avx512_bf16=True))
    monkeypatch.setattr(runtime, "measured_bf16", lambda key: (False, "bf16 341 ms vs fp32 219 ms per DCGAN step"))
    precision, reason = runtime.resolve_precision("auto", "cpu")
    assert precision == "fp32" and "measured slower" in reason and "341 ms" in reason


def test_the_measurement_is_made_once_and_kept_in_the_cache(monkeypatch, tmp_path):
    """The probe runs once per CPU/torch/threads key; later processes read its times from the cache file."""
    import json

    monkeypatch.undo()  # the real measured_bf16 (conftest stubs it), with a counted probe
    monkeypatch.setenv("GAN_UNLEARN_CACHE", str(tmp_path))
    calls = []
    speeds = {"fast": {"fp32": 0.09, "bf16": 0.05}, "slow": {"fp32": 0.09, "bf16": 0.12}}
    monkeypatch.setattr(runtime, "bf16_speed_probe", lambda: calls.append(1) or dict(speeds[key_of[0]]))
    key_of = ["fast"]
    runtime.measured_bf16.cache_clear()
    try:
        assert runtime.measured_bf16("cpu A")[0] is True and len(calls) == 1
        assert runtime.measured_bf16("cpu A")[0] is True and len(calls) == 1  # in-process memo
        runtime.measured_bf16.cache_clear()  # a new process: read from the file, no probe
        assert runtime.measured_bf16("cpu A")[0] is True and len(calls) == 1
        key_of[0] = "slow"
        faster, text = runtime.measured_bf16("cpu B")  # another key measures again
        assert faster is False and len(calls) == 2 and "0.75x" in text
        assert set(json.loads((tmp_path / "precision_probe.json").read_text())) == {"cpu A", "cpu B"}
    finally:
        runtime.measured_bf16.cache_clear()


def test_the_probe_times_both_precisions_and_leaves_the_random_state(monkeypatch):
    state = torch.random.get_rng_state()
    times = runtime.bf16_speed_probe(iterations=1)
    assert set(times) == {"fp32", "bf16"} and all(t > 0 for t in times.values())
    assert torch.equal(torch.random.get_rng_state(), state)
