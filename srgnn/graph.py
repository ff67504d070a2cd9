"""Session graphs of a whole batch of prefixes, built with tensor operations.

SR-GNN (Wu et al., AAAI 2019, Section "Constructing Session Graphs") models a
session ``s = [v_1, ..., v_n]`` as a directed graph: the nodes are the
session's distinct items and every consecutive pair ``(v_i, v_i+1)`` is an
edge. Two normalised adjacency matrices describe it (the paper's Figure 2)::

    A_out[u, v] = w(u -> v) / sum_k w(u -> k)     (outgoing, by out-degree of u)
    A_in[v, u]  = w(u -> v) / sum_k w(k -> v)     (incoming, by in-degree of v)

and the paper's ``A_s`` is their concatenation ``[A_out | A_in]`` of shape
``[n, 2n]`` for ``n`` nodes. The edge weight ``w`` is

- ``"binary"`` (the reference code, the default): 1 for every distinct edge,
  however often it occurs;
- ``"count"`` (the paper's text): the number of times the edge occurs, so a
  row of ``A_out`` is the empirical distribution of the next item. The same
  rule is applied to the reversed edges for ``A_in`` (weighted in-degree).

The paper's session ``v1, v2, v3, v2, v4`` gives (nodes v1..v4, either
weighting, as no edge repeats)::

    A_out = [[0, 1,   0,   0  ],      A_in = [[0,   0, 0,   0],
             [0, 0,   1/2, 1/2],              [1/2, 0, 1/2, 0],
             [0, 1,   0,   0  ],              [0,   1, 0,   0],
             [0, 0,   0,   0  ]]              [0,   1, 0,   0]]

Layout
------
:func:`build_session_graphs` builds the graphs of a padded batch ``[B, L]`` at
once, with no Python loop over sessions, and keeps them PACKED: the nodes of
all rows are numbered ``0..U-1`` row after row (within a row, by item id),
and the adjacency matrices are kept as their non-zero entries (one per
distinct edge). The network then works on ``U`` real nodes rather than on
``B x max_nodes`` padded slots, and passes messages along the ``E`` edges
with scatter-adds. :meth:`SessionGraphs.dense` gives the padded
``[B, N, N]`` matrices (for tests and inspection).

Steps: one sort/unique over ``row << 32 | item`` keys of the real positions
gives every row's nodes and each position's node (its alias); a second
unique over ``(source node, target node)`` pairs of consecutive positions
gives the distinct edges and their occurrence counts; degrees are
scatter-adds over the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

EDGE_WEIGHTS = ("binary", "count")

#: item ids must stay below 2**32 so that ``row << 32 | item`` is a unique key
_ITEM_BITS = 32


@dataclass(frozen=True)
class SessionGraphs:
    """The session graphs of ``B`` prefixes: ``U`` nodes and ``E`` distinct
    edges in all, ``L`` positions per prefix at most.

    Attributes:
        node_items: LongTensor [U], the item of each node; the nodes of row
            ``b`` are ``first_node[b] .. first_node[b] + n_nodes[b] - 1``,
            by ascending item id.
        node_row: LongTensor [U], the row (prefix) of each node.
        node_multiplicity: FloatTensor [U], how many positions of its prefix
            hold the node's item.
        n_nodes: LongTensor [B], nodes per row (distinct items of the prefix).
        first_node: LongTensor [B], index of each row's first node.
        alias: LongTensor [B, L], the node (index into ``0..U-1``) of each
            position; 0 at padded positions (masked by ``position_mask``).
        position_mask: BoolTensor [B, L], True for the prefix's own positions.
        last_node: LongTensor [B], the node of each prefix's last click (v_n).
        edge_source, edge_target: LongTensor [E], the nodes of each distinct
            edge ``source -> target``.
        edge_count: FloatTensor [E], occurrences of each edge in its prefix.
        out_weight: FloatTensor [E], ``A_out[source, target]``.
        in_weight: FloatTensor [E], ``A_in[target, source]``.
    """

    node_items: torch.Tensor
    node_row: torch.Tensor
    node_multiplicity: torch.Tensor
    n_nodes: torch.Tensor
    first_node: torch.Tensor
    alias: torch.Tensor
    position_mask: torch.Tensor
    last_node: torch.Tensor
    edge_source: torch.Tensor
    edge_target: torch.Tensor
    edge_count: torch.Tensor
    out_weight: torch.Tensor
    in_weight: torch.Tensor

    def __len__(self) -> int:
        return int(self.n_nodes.shape[0])

    @property
    def n_total_nodes(self) -> int:
        """U, the number of nodes of the batch."""
        return int(self.node_items.shape[0])

    def to(self, device: torch.device | str) -> SessionGraphs:
        """A copy with every tensor on ``device``."""
        return SessionGraphs(*(getattr(self, f.name).to(device) for f in fields(self)))

    def dense(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded per-row matrices, as the paper draws them.

        Returns:
            ``(node_items, a_out, a_in, alias)``: LongTensor [B, N] (0 for
            padded node slots), FloatTensor [B, N, N] twice, and LongTensor
            [B, L] of row-local node indices (0 at padded positions), with
            ``N = n_nodes.max()``. The paper's ``A_s`` of row b is
            ``torch.cat([a_out[b], a_in[b]], 1)``.
        """
        n_rows, width = len(self), int(self.n_nodes.max())
        local = torch.arange(self.n_total_nodes, device=self.node_items.device) - self.first_node[self.node_row]
        node_items = self.node_items.new_zeros(n_rows, width)
        node_items[self.node_row, local] = self.node_items
        row = self.node_row[self.edge_source]
        source, target = local[self.edge_source], local[self.edge_target]
        a_out = self.out_weight.new_zeros(n_rows, width, width)
        a_out[row, source, target] = self.out_weight
        a_in = self.in_weight.new_zeros(n_rows, width, width)
        a_in[row, target, source] = self.in_weight
        alias = torch.where(self.position_mask, self.alias - self.first_node[:, None], 0)
        return node_items, a_out, a_in, alias


def build_session_graphs(
    items: torch.Tensor, lengths: torch.Tensor, edge_weight: str = "binary"
) -> SessionGraphs:
    """The session graph of every row of a padded batch, packed.

    Args:
        items: LongTensor [B, L], item ids (>= 1) left-aligned, 0-padded
            (the layout of :class:`harness.data.dataset.PrefixBatch`).
        lengths: LongTensor [B], real positions per row, 1..L.
        edge_weight: ``"binary"`` (each distinct edge counts once, as in the
            reference code) or ``"count"`` (edges weighted by occurrences, as
            in the paper's text).

    Returns:
        :class:`SessionGraphs` on the device of ``items``. Only positions
        ``< lengths`` are read; whatever lies in the padding is ignored.
    """
    if edge_weight not in EDGE_WEIGHTS:
        raise ValueError(f"edge_weight must be one of {EDGE_WEIGHTS}, got {edge_weight!r}")
    if items.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != items.shape[0]:
        raise ValueError(f"need items [B, L] and lengths [B]; got {tuple(items.shape)} and {tuple(lengths.shape)}")
    device = items.device
    items = items.long()
    lengths = lengths.to(device=device, dtype=torch.long)
    n_rows, width = items.shape

    position_mask = torch.arange(width, device=device)[None, :] < lengths[:, None]  # [B, L]
    rows = torch.arange(n_rows, device=device)[:, None].expand(n_rows, width)  # [B, L]

    # -- nodes: sorted unique (row, item) pairs of the real positions ---------
    keys = (rows[position_mask] << _ITEM_BITS) | items[position_mask]  # [M], M = sum(lengths)
    node_keys, position_node, multiplicity = torch.unique(
        keys, sorted=True, return_inverse=True, return_counts=True
    )  # [U], [M], [U]
    node_row = node_keys >> _ITEM_BITS
    node_items = node_keys & ((1 << _ITEM_BITS) - 1)
    n_nodes = torch.bincount(node_row, minlength=n_rows)  # [B]
    first_node = torch.cumsum(n_nodes, 0) - n_nodes  # [B]

    alias = torch.zeros(n_rows, width, dtype=torch.long, device=device)
    alias[position_mask] = position_node
    last_node = alias.gather(1, (lengths - 1)[:, None]).squeeze(1)

    # -- edges: distinct (node at l, node at l+1) pairs, with their counts ----
    has_edge = position_mask[:, 1:]  # [B, L-1]: position l+1 is real
    n_total = len(node_keys)
    pair_keys = alias[:, :-1][has_edge] * n_total + alias[:, 1:][has_edge]
    edge_keys, edge_count = torch.unique(pair_keys, sorted=True, return_counts=True)  # [E], [E]
    edge_source, edge_target = edge_keys // n_total, edge_keys % n_total
    weight = edge_count.float() if edge_weight == "count" else torch.ones(len(edge_keys), device=device)
    out_degree = torch.zeros(n_total, device=device).index_add_(0, edge_source, weight)  # [U]
    in_degree = torch.zeros(n_total, device=device).index_add_(0, edge_target, weight)  # [U]

    return SessionGraphs(
        node_items=node_items,
        node_row=node_row,
        node_multiplicity=multiplicity.float(),
        n_nodes=n_nodes,
        first_node=first_node,
        alias=alias,
        position_mask=position_mask,
        last_node=last_node,
        edge_source=edge_source,
        edge_target=edge_target,
        edge_count=edge_count.float(),
        out_weight=weight / out_degree[edge_source],
        in_weight=weight / in_degree[edge_target],
    )
