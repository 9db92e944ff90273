"""Merging a benchmark run in parts (one seed per lent-GPU call) gives the numbers of one run over all seeds."""

import copy
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from merge_bench_results import merge  # noqa: E402

STORED = Path(__file__).resolve().parents[1] / "scripts" / "results" / "bench_gan_cifar_class25_cpu.json"


def one_seed_parts(result: dict) -> list[dict]:
    """The stored 3-seed run cut into the 1-seed runs it would have been had each seed run alone."""
    parts = []
    for i, seed in enumerate(result["seeds"]):
        part = copy.deepcopy(result)
        part["seeds"] = [seed]
        for req in part["requests"].values():
            req["per_seed"] = [req["per_seed"][i]]
            req.pop("aggregate"), req.pop("table")
        parts.append(part)
    return parts


def test_merging_one_seed_parts_recovers_the_three_seed_run():
    result = json.loads(STORED.read_text())
    merged = merge(one_seed_parts(result))
    assert merged["seeds"] == result["seeds"]
    assert merged["requests"]["class"]["aggregate"] == result["requests"]["class"]["aggregate"]
    assert merged["requests"]["class"]["table"] == result["requests"]["class"]["table"]


def test_parts_that_measured_other_things_or_share_a_seed_are_refused():
    parts = one_seed_parts(json.loads(STORED.read_text()))
    with pytest.raises(ValueError, match="seed appears in more than one part"):
        merge([parts[0], copy.deepcopy(parts[0])])
    other = copy.deepcopy(parts[1])
    other["recipe_epochs"] = 5
    with pytest.raises(ValueError, match="recipe_epochs"):
        merge([parts[0], other])
    other = copy.deepcopy(parts[1])
    other["machine"] = {**other["machine"], "gpu": "another"}
    with pytest.raises(ValueError, match="machine"):
        merge([parts[0], other])


def test_renaming_swaps_a_variant_with_the_default_in_every_table():
    from merge_bench_results import rename

    parts = one_seed_parts(json.loads(STORED.read_text()))
    result = json.loads(STORED.read_text())["requests"]["class"]["aggregate"]
    names = {"cascaded": "cascaded-item-rates", "cascaded-equal-lr": "cascaded"}
    merged = merge([rename(p, names) for p in parts])["requests"]["class"]["aggregate"]
    assert merged["cascaded"] == result["cascaded-equal-lr"]
    assert merged["cascaded-item-rates"] == result["cascaded"]
    assert "cascaded-equal-lr" not in merged and merged["retrain"] == result["retrain"]
    with pytest.raises(ValueError, match="is there already"):
        rename(parts[0], {"cascaded": "cascaded-equal-lr"})
    with pytest.raises(ValueError, match="no variant"):
        rename(parts[0], {"cascaded-fast-d": "cascaded"})
