"""Plots (matplotlib is an optional extra, imported only here and only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import atomic_write
from .errors import UserError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plots need matplotlib: pip install 'gan-unlearn[plots]'") from None
    return plt


def bar_chart(values, path: str | Path, title: str = "", xlabel: str = "", ylabel: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.bar(range(len(values)), list(values), width=1.0)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return Path(path)
