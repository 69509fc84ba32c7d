"""Entry point of the bundled app (PyInstaller runs this file as __main__)."""

import multiprocessing
import sys

from hitl_desktop.cli import main

if __name__ == "__main__":
    # the offline engine runs in a spawned process: in a frozen app that process is
    # this executable again, and freeze_support() makes it run the engine, not the app
    multiprocessing.freeze_support()
    sys.exit(main())
