"""gan-unlearn: machine unlearning for GANs and classifiers.

Core pieces live here (data, forget requests, models, checkpoints, relevance); training and
unlearning live in the ``trainers`` package, measurements in ``metrics``.
"""

__version__ = "0.1.0"
