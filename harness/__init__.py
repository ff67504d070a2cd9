"""sessionbench's shared machinery: data, protocols, metrics, plugin API, CLI.

Importing this package (or any of its modules) has no side effects: no
logging set-up, no model imports, no file access.
"""

__version__ = "0.1.0"
