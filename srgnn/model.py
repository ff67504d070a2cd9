"""The SR-GNN network (Wu et al., AAAI 2019, equations 1-10).

Shapes: ``B`` prefixes, ``U`` nodes (distinct items of each prefix) in the
whole batch, ``E`` distinct edges, ``L`` positions per prefix at most, ``d``
hidden size, ``I = n_items + 1`` item ids (0 is padding). Node vectors are
packed, ``[U, d]``, so no padded node is ever computed (see
:mod:`srgnn.graph`).

Gated graph propagation, repeated ``step`` times on the node vectors
``V = [v_1 .. v_N]`` (eqs. 1-5)::

    (1) a_i = [A_in[i, :] V H_in ; A_out[i, :] V H_out] + b          a_i in R^2d
    (2) z_i = sigmoid(W_z a_i + U_z v_i)                             update gate
    (3) r_i = sigmoid(W_r a_i + U_r v_i)                             reset gate
    (4) v~_i = tanh(W_o a_i + U_o (r_i * v_i))                       candidate
    (5) v_i <- (1 - z_i) * v_i + z_i * v~_i

Session embedding from the prefix's own positions ``1..n`` (eqs. 6-7)::

    (6) alpha_i = q^T sigmoid(W_1 v_n + W_2 v_i + c),   s_g = sum_i alpha_i v_i
    (7) s_h = W_3 [s_1 ; s_g]        (s_1 = v_n, the last click's node vector)

and the scores of every item ``j`` are ``s_h . e_j`` (eq. 8), trained with
softmax cross-entropy over items 1..n_items (eqs. 9-10). With
``nonhybrid=True`` the session embedding is ``s_g`` alone.

Every affine map has a bias (the paper writes some of them without one; the
reference code has them), except ``H_in``/``H_out`` (whose bias is ``b`` of
eq. 1; ``edge_bias=True`` adds the reference code's second bias inside the
product), ``W_1`` (whose bias is ``c`` of eq. 6) and ``q``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from harness.models.neural import item_softmax_cross_entropy
from srgnn.graph import SessionGraphs


class GateValues(NamedTuple):
    """The intermediate values of one propagation step (``U`` nodes of the batch)."""

    message: torch.Tensor  # a, eq. 1: [U, 2d]
    update: torch.Tensor  # z, eq. 2: [U, d]
    reset: torch.Tensor  # r, eq. 3: [U, d]
    candidate: torch.Tensor  # v~, eq. 4: [U, d]
    hidden: torch.Tensor  # new v, eq. 5: [U, d]


class GatedGraphCell(nn.Module):
    """One step of gated graph propagation over packed session graphs (eqs. 1-5).

    Node vectors are packed, ``[U, d]`` for the ``U`` nodes of the whole
    batch (see :mod:`srgnn.graph`); the products ``A_in V`` and ``A_out V`` of
    eq. 1 are one gather along the edges and one scatter-add onto the nodes.
    """

    def __init__(self, hidden_size: int, edge_bias: bool = False) -> None:
        super().__init__()
        d = hidden_size
        self.hidden_size = d
        # eq. 1: [H_in | H_out] applied to node vectors in one matmul; b is the message bias.
        # edge_bias: the reference code's extra bias b_e inside the products, A (V H + 1 b_e^T)
        self.edge = nn.Linear(d, 2 * d, bias=edge_bias)
        self.message_bias = nn.Parameter(torch.empty(2 * d))
        # eqs. 2-4: W_z, W_r, W_o on the message (one matmul) and U_z, U_r on the state
        self.w_message = nn.Linear(2 * d, 3 * d)
        self.u_gates = nn.Linear(d, 2 * d)
        # eq. 4: U_o on the reset state
        self.u_candidate = nn.Linear(d, d)

    def message(self, graphs: SessionGraphs, hidden: torch.Tensor) -> torch.Tensor:
        """Eq. 1: ``[A_in V H_in ; A_out V H_out] + b``, [U, d] -> [U, 2d].

        Node ``v`` receives ``A_in[v, u] (v_u H_in)`` over its incoming edges
        ``u -> v`` and ``A_out[v, w] (v_w H_out)`` over its outgoing edges
        ``v -> w``. Viewing the projection [U, 2d] as [2U, d] (row ``2u`` is
        ``v_u H_in``, row ``2u + 1`` is ``v_u H_out``), both sums are one
        index_select and one index_add over the ``2E`` directed contributions.
        """
        n_nodes, d = hidden.shape
        source, target = graphs.edge_source, graphs.edge_target
        projected = self.edge(hidden).reshape(2 * n_nodes, d)  # [2U, d]
        read = torch.cat([2 * source, 2 * target + 1])  # [2E]: what each contribution reads
        write = torch.cat([2 * target, 2 * source + 1])  # [2E]: where it lands
        weight = torch.cat([graphs.in_weight, graphs.out_weight]).unsqueeze(1)  # [2E, 1]
        summed = hidden.new_zeros(2 * n_nodes, d).index_add(0, write, weight * projected.index_select(0, read))
        return summed.reshape(n_nodes, 2 * d) + self.message_bias

    def gates(self, graphs: SessionGraphs, hidden: torch.Tensor) -> GateValues:
        """Every value of one step; ``hidden`` is [U, d], the node vectors v^(t-1)."""
        message = self.message(graphs, hidden)  # eq. 1, [U, 2d]
        w_z, w_r, w_o = self.w_message(message).chunk(3, dim=1)  # 3 x [U, d]
        u_z, u_r = self.u_gates(hidden).chunk(2, dim=1)  # 2 x [U, d]
        update = torch.sigmoid(w_z + u_z)  # eq. 2
        reset = torch.sigmoid(w_r + u_r)  # eq. 3
        candidate = torch.tanh(w_o + self.u_candidate(reset * hidden))  # eq. 4
        new_hidden = hidden + update * (candidate - hidden)  # eq. 5: (1 - z) v + z v~
        return GateValues(message, update, reset, candidate, new_hidden)

    def forward(self, graphs: SessionGraphs, hidden: torch.Tensor) -> torch.Tensor:
        """[U, d] -> [U, d]: the node vectors after one step."""
        return self.gates(graphs, hidden).hidden


class SRGNN(nn.Module):
    """SR-GNN: item embeddings, gated GNN, soft attention, hybrid session embedding.

    Args:
        n_items: number of items; embeddings exist for ids 0..n_items (row 0,
            padding, is never a node and never a training target).
        hidden_size: d.
        step: propagation steps of eqs. 1-5.
        nonhybrid: use s_g alone instead of eq. 7.
        edge_bias: add the reference code's bias inside the products of
            eq. 1: ``A_in (V H_in + 1 b_in^T)``, i.e. ``b_in`` for every node
            with an incoming edge (``b_out`` with an outgoing one).
    """

    def __init__(
        self, n_items: int, hidden_size: int = 100, step: int = 1, nonhybrid: bool = False, edge_bias: bool = False
    ) -> None:
        super().__init__()
        d = hidden_size
        self.n_items, self.hidden_size, self.step, self.nonhybrid = n_items, d, step, nonhybrid
        # sparse: the node lookup adds its gradient into the dense one of the softmax
        # (the rows of the batch's nodes only), instead of filling a second [I, d] table
        self.embedding = nn.Embedding(n_items + 1, d, sparse=True)  # e_j, [I, d]
        self.cell = GatedGraphCell(d, edge_bias)  # eqs. 1-5
        self.w_last = nn.Linear(d, d, bias=False)  # W_1, eq. 6
        self.w_node = nn.Linear(d, d)  # W_2 and c, eq. 6
        self.q = nn.Linear(d, 1, bias=False)  # q, eq. 6
        self.w_hybrid = nn.Linear(2 * d, d)  # W_3, eq. 7

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Every parameter uniform in [-1/sqrt(d), 1/sqrt(d)] (the paper's init)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-bound, bound, generator=generator)

    # -- eqs. 1-5 -----------------------------------------------------------

    def propagate(self, graphs: SessionGraphs) -> torch.Tensor:
        """[U, d]: node vectors after ``step`` steps of eqs. 1-5."""
        hidden = self.embedding(graphs.node_items)  # v^0 = e_item, [U, d]
        for _ in range(self.step):
            hidden = self.cell(graphs, hidden)
        return hidden

    # -- eqs. 6-7 -----------------------------------------------------------

    def attention(self, nodes: torch.Tensor, graphs: SessionGraphs) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft attention of eq. 6 over each prefix's own positions.

        ``alpha_i`` depends on position i only through its node, so it is
        computed once per node and ``s_g = sum_i alpha_i v_i`` is summed per
        node, weighted by how many positions the node fills; no padding
        enters.

        Args:
            nodes: [U, d] node vectors (from :meth:`propagate`).
            graphs: the batch's graphs.

        Returns:
            ``(s_g, alpha)``: the global embedding [B, d] and the attention
            weight of every position [B, L], exactly 0 at padded positions.
        """
        last = nodes[graphs.last_node]  # v_n, [B, d]
        node_alpha = self.q(torch.sigmoid(self.w_last(last)[graphs.node_row] + self.w_node(nodes))).squeeze(1)  # [U]
        weighted = (node_alpha * graphs.node_multiplicity).unsqueeze(1) * nodes  # [U, d]
        s_global = nodes.new_zeros(len(graphs), nodes.shape[1]).index_add(0, graphs.node_row, weighted)  # [B, d]
        alpha = node_alpha[graphs.alias].masked_fill(~graphs.position_mask, 0.0)  # [B, L]
        return s_global, alpha

    def forward(self, graphs: SessionGraphs) -> torch.Tensor:
        """[B, d]: the session embedding s_h (eq. 7), or s_g with ``nonhybrid``."""
        nodes = self.propagate(graphs)
        s_global, _ = self.attention(nodes, graphs)
        if self.nonhybrid:
            return s_global
        s_local = nodes[graphs.last_node]  # s_1 = v_n, [B, d]
        return self.w_hybrid(torch.cat([s_local, s_global], dim=1))

    def scores(self, session: torch.Tensor) -> torch.Tensor:
        """[B, d] -> [B, I]: ``s_h . e_j`` for every item id j (eq. 8), column 0 included."""
        return session @ self.embedding.weight.t()

    def loss(self, session: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the targets (ids 1..n_items) under softmax over items 1..n_items (eqs. 9-10)."""
        return item_softmax_cross_entropy(session, self.embedding.weight, targets)
