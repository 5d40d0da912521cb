"""The bench package lives at the repository's root (not installed), and the tests share a small fixture module:
make both importable however pytest is run."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (str(HERE.parents[2]), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)
