"""The top layer: the command line and the workflows it runs (checkpoint in, checkpoint out; evaluation;
downstream use; reports).

It is the one part of ``gan_unlearn`` that imports upward, from ``trainers`` and ``metrics``; it lives
here because the design card fixes the repository's top-level names. The dependency order is
core (``gan_unlearn``) <- ``metrics`` <- ``trainers`` <- ``gan_unlearn.workflows``
(``tests/test_layers.py`` checks it).
"""
