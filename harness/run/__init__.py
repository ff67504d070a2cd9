"""Running suites: suite files, the runner and its plan, the code fingerprint
behind run ids, the run store, the output folder's lock, time limits,
executors (local processes, GPUs, Ray) and hyper-parameter searches.

Importing this package has no side effects.
"""
