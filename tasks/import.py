"""`python -m tasks.import FILE [options]`: see tasks/history_import.py (`import` is a keyword, so
the code lives in a module that can be imported by name)."""

from __future__ import annotations

import sys

from tasks.history_import import main

if __name__ == "__main__":
    sys.exit(main())
