"""``python -m hitl_desktop`` is the same as the ``hitl-desktop`` command."""

import sys

from hitl_desktop.cli import main

sys.exit(main())
