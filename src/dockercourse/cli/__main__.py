"""``python -m dockercourse.cli ...``: the same as the ``dockercourse`` command."""

import sys

from dockercourse.cli import main

sys.exit(main())
