"""The shipped preset grids (TOML files, read with importlib.resources)."""
