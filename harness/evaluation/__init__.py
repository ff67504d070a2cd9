"""Scoring and measuring: the evaluator (full ranking of every test prefix,
stored ranks), the metric registry, approximate-nearest-neighbour retrieval
and timing.

Importing this package has no side effects.
"""
