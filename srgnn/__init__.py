"""SR-GNN (Wu, Tang, Zhu, Wang, Xie, Tan; AAAI 2019): session-based
recommendation with graph neural networks.

- :mod:`srgnn.graph`: session graphs of a whole batch, built with tensor ops;
- :mod:`srgnn.model`: the network (gated GNN, attention, hybrid embedding);
- :mod:`srgnn.recommender`: the registered ``srgnn`` model and its training.

Importing the package registers ``srgnn`` (the ``sessionbench.models`` entry
point names this package). See docs/srgnn.md.
"""

from srgnn.graph import SessionGraphs, build_session_graphs
from srgnn.model import SRGNN
from srgnn.recommender import SRGNNRecommender

__all__ = ["SRGNN", "SRGNNRecommender", "SessionGraphs", "build_session_graphs"]
