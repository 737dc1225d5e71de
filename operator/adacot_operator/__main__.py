"""`python -m adacot_operator [kopf run options]`: `kopf run -m adacot_operator.handlers --standalone`
plus the given options (e.g. `--all-namespaces --liveness=http://0.0.0.0:8080/healthz`), for images and
local use without remembering kopf's flags. Besides handlers, the one module that imports kopf (its
CLI, not its handler API)."""

from __future__ import annotations

import sys

from kopf.cli import main

if __name__ == "__main__":
    sys.argv = ["kopf", "run", "-m", "adacot_operator.handlers", "--standalone", *sys.argv[1:]]
    main()
