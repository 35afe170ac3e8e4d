"""kubernetes.core for the baselines, taken from the `ansible` package on PyPI.

The `ansible` bundle ships kubernetes.core; installing the whole bundle into the venv would add
~100 collections next to ansible-core (and to what ansible-test sees), so the wheel is fetched
with pip (`pip download --no-deps`, cached in .build/wheels) and only
`ansible_collections/kubernetes/core/` is unpacked into .build/kcore. The baselines put that
directory on ANSIBLE_COLLECTIONS_PATH after the collection's own.
"""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# ansible 12.x is the bundle for ansible-core 2.19 (requirements-dev.txt pins 2.19.x).
ANSIBLE_BUNDLE = "ansible==12.3.0"
WHEELS = REPO / ".build" / "wheels"
ROOT = REPO / ".build" / "kcore"
PREFIX = "ansible_collections/kubernetes/core/"


def collections_path():
    """Directory to add to ANSIBLE_COLLECTIONS_PATH (holds ansible_collections/kubernetes/core)."""
    manifest = ROOT / PREFIX / "MANIFEST.json"
    if manifest.exists():
        return ROOT
    version = ANSIBLE_BUNDLE.split("==")[1]
    wheel = WHEELS / ("ansible-%s-py3-none-any.whl" % version)
    if not wheel.exists():
        WHEELS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "-d", str(WHEELS), ANSIBLE_BUNDLE], check=True)
    tmp = ROOT.with_name("kcore.tmp")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp, [n for n in zf.namelist() if n.startswith(PREFIX)])
    if ROOT.exists():
        import shutil
        shutil.rmtree(ROOT)
    tmp.rename(ROOT)
    return ROOT


def version():
    import json
    return json.loads((collections_path() / PREFIX / "MANIFEST.json").read_text())["collection_info"]["version"]


if __name__ == "__main__":
    print(collections_path(), version())
