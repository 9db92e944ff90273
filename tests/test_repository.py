"""The promises the repository makes about itself."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    first_screen = readme[:2500]
    commands = re.findall(r"^    (bash scripts/setup_env\.sh && .*pytest.*)$", first_screen, re.M)
    assert len(commands) == 1, "the README's first screen must show one test command"
    assert commands[0] in ci.splitlines()


def test_readme_first_screen_has_the_end_to_end_command():
    first_screen = (REPO / "README.md").read_text()[:2500]
    assert "bash scripts/quickstart.sh" in first_screen
    assert (REPO / "scripts" / "quickstart.sh").exists()


def test_design_card_top_level():
    for name in ("setup.cfg", "gan_unlearn", "trainers", "metrics", "tests", "scripts", "README.md"):
        assert (REPO / name).exists(), name
