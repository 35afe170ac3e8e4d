"""Where the tests find this checkout as the meshfed.istio collection (as `make collection` links it)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / ".build" / "collections"


def ensure_collection_link(importable=False):
    """Link the checkout as ansible_collections/meshfed/istio; with ``importable``, also put it on sys.path."""
    target = COLLECTIONS / "ansible_collections" / "meshfed" / "istio"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            target.symlink_to(REPO)
        except FileExistsError:  # another pytest worker linked it first
            pass
    if importable and str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
