"""Non-SR-GNN models, one module per family.

Importing this package registers its models (``pop``, ``spop``, ...); the
harness finds it through the ``sessionbench.models`` entry point.
"""

from baselines import popularity  # noqa: F401  (registers pop, spop)
