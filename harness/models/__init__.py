"""The model interface: the plugin base class `SessionRecommender`, the
registry and hyper-parameter checks, epoch-based training with checkpoints,
the torch base of the neural models, the conformance checks and the plugin
template.

Importing this package has no side effects.
"""
