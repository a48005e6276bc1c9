"""``python -m simxen``: the ``onexen-simxen`` command line."""

from simxen.cli import main

raise SystemExit(main())
