"""Puts the source root (this folder's parent) on sys.path, so that `shared` imports.

functions-framework and the Cloud Functions runtime put only the function file's own folder on
sys.path. Appended, not prepended: nothing of ours may shadow an installed module.
"""

import sys
from pathlib import Path

SOURCE_ROOT = str(Path(__file__).resolve().parents[1])
if SOURCE_ROOT not in sys.path:
    sys.path.append(SOURCE_ROOT)
