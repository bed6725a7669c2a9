#!/usr/bin/env python
"""Django's command-line utility for the Tandem platform (create_org, create_token, db_worker, demo, …)."""

import sys
from pathlib import Path

# Run from a checkout without installing: make src importable.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from tandem.web.manage import main

if __name__ == "__main__":
    main()
