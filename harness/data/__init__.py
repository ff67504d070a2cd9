"""From raw click logs to prepared splits: fetching, readers, dataset specs,
preprocessing and the time split, the prepared cache, `SessionDataset`, and
the synthetic and full-size stand-in logs.

Importing this package has no side effects.
"""
