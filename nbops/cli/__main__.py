"""``python -m nbops.cli`` is the ``nbops`` command too."""

from nbops.cli import main

main()
