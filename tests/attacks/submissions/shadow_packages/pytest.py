"""Shadow of `pytest`: if anything imports this, it leaves evidence and fails loudly."""

import os as _os
import sys as _sys

with open(_os.path.join(_os.environ.get("TMPDIR", "/tmp"), "cvgrade-shadow-ran-pytest"), "w") as _evidence:
    _evidence.write(repr(_sys.argv))
raise ImportError("the candidate's shadow pytest.py was imported by " + repr(_sys.argv[:2]))
