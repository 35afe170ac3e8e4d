"""Stand-in for ansible-test's get-pip bootstrap script, which it downloads from a host this
machine cannot reach. Same contract: run as __main__ with pip-install arguments inside a fresh
virtual environment. Installs the bundled pip with ensurepip, then the requested packages from PyPI."""

import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
os.environ.pop("PIP_CONFIG_FILE", None)  # ensurepip points it at /dev/null; pip.conf must apply again
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
