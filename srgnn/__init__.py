"""SR-GNN (Wu et al., AAAI 2019).

The model itself is the subject of a later issue (#5); this package is
declared now so that the ``sessionbench.models`` entry point and the
packaging are in place. It registers nothing yet.
"""
