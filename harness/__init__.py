"""sessionbench's shared machinery, one sub-package per stage of the flow.

``harness.data`` (raw logs to prepared splits), ``harness.models`` (the plugin
interface, registry and training), ``harness.evaluation`` (scoring, ranks,
metrics, timing), ``harness.run`` (suites, runs, their store) and
``harness.report`` (figures and tables from stored runs); ``harness.cli`` is
the command line.

Importing this package (or any of its modules) has no side effects: no
logging set-up, no model imports, no file access.
"""

__version__ = "0.2.0"
