"""The layers point one way: core (gan_unlearn) <- metrics <- trainers <- gan_unlearn.workflows (CLI and
workflows). Every import in the package code, module-level or inside a function, is checked."""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RANKS = {"core": 0, "metrics": 1, "trainers": 2, "workflows": 3}


def layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    if module.startswith("gan_unlearn.workflows"):
        return "workflows"
    return {"gan_unlearn": "core", "metrics": "metrics", "trainers": "trainers"}.get(top)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.append((node.lineno, target))
    return out


def upward_imports() -> list[str]:
    bad = []
    for top in ("gan_unlearn", "metrics", "trainers"):
        for path in sorted((REPO / top).rglob("*.py")):
            own = layer_of(module_name(path))
            for line, target in imports_of(path):
                other = layer_of(target)
                if other is not None and RANKS[other] > RANKS[own]:
                    bad.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {target} ({other})")
    return bad


def test_no_module_imports_from_a_layer_above_it():
    assert upward_imports() == []


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The oracle for the check itself: a core module that imports trainers is reported."""
    fake = tmp_path / "gan_unlearn"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("def f():\n    from trainers.gan import GANConfig\n")
    for name in ("metrics", "trainers"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert upward_imports() == ["gan_unlearn/bad.py:2 (core) imports trainers.gan (trainers)"]
