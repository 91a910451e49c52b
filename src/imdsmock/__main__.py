"""``python -m imdsmock``: the same as the ``imdsmock`` command."""

from imdsmock.cli import main

raise SystemExit(main())
