"""The `dpaudit` command line: one module per command group, wired in :mod:`dpaudit.cli.app`."""
