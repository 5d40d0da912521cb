"""iam_check lives at the repository's root (not installed), like bench: make it importable however pytest runs."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
