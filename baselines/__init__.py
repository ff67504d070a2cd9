"""Non-SR-GNN models, one module per family (the neural ones build on
harness.models.neural: gru4rec, narm, stamp, sasrec, factorization).

Importing this package registers its models (``pop``, ``spop``, ...); the
harness finds it through the ``sessionbench.models`` entry point.
"""

from baselines import popularity  # noqa: F401  (registers pop, spop)
from baselines import markov  # noqa: F401  (registers markov)
from baselines import rules  # noqa: F401  (registers ar, sr)
from baselines import itemknn  # noqa: F401  (registers itemknn)
from baselines import knn  # noqa: F401  (registers sknn, vsknn, stan, vstan)
from baselines import gru4rec  # noqa: F401  (registers gru4rec)
from baselines import narm  # noqa: F401  (registers narm)
from baselines import stamp  # noqa: F401  (registers stamp)
from baselines import sasrec  # noqa: F401  (registers sasrec)
from baselines import factorization  # noqa: F401  (registers bprmf, fpmc)
