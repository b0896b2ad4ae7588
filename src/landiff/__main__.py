"""``python -m landiff`` is the ``landiff`` command."""

from landiff.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
