"""``python -m imdsmock``: the same as the ``imdsmock`` command."""

from .cli import main

raise SystemExit(main())
