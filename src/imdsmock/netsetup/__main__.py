"""``python -m imdsmock.netsetup ARGS`` is ``imdsmock route ARGS``."""

import sys

from imdsmock.netsetup.cli import main

sys.exit(main(sys.argv[1:]))
