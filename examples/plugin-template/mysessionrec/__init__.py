"""An example sessionbench plugin package."""
