"""Command-line interface: ``landiff <command>``; one module per command group."""
