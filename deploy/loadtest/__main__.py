"""`python -m deploy.loadtest`: see run.py.

deploy/ is not a package (its scripts run directly), so this package is `loadtest` with deploy/
on the path, for the interpreter and for mypy alike.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.run import main

sys.exit(main())
