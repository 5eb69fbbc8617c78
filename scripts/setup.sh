#!/usr/bin/env bash
# Install everything OreMap needs on Debian 12 (bookworm). Idempotent: a second run
# checks and returns in about a second. Run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="qgis python3-qgis python3-venv python3-rasterio python3-geopandas \
python3-sklearn python3-scipy python3-rtree python3-cairo python3-pip python3-pyqt6 python3-h5py python3-dask python3-distributed xvfb xauth"
# python3-h5py: the tests write PRISMA L2D (HDF-EOS5) fixtures with it; the readers use GDAL's own drivers.
# python3-cairo: Debian's python3-gi (pulled in by QGIS) needs it, or `pip check` below reports a broken install.
# python3-pip: the optional-package installer runs pip for QGIS's Python (test_package_installer). python3-pyqt6:
# test_qt6_readiness looks up every scoped Qt enum the plugin uses in PyQt6 (QGIS 4).

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# requirements.lock pins Python 3.11 wheels (with their hashes) and keeps Debian 12's numpy 1.24: on another system
# (Debian 13 runs Python 3.13 and numpy 2.2) pip would stop on a missing wheel. Say so before installing anything.
SYSTEM_PYTHON=${OREMAP_SYSTEM_PYTHON:-/usr/bin/python3}
if [ -x "$SYSTEM_PYTHON" ]; then
  have=$("$SYSTEM_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$have" != "3.11" ]; then
    system=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-this system}" || echo "this system")
    echo "setup: OreMap's development setup is pinned to Debian 12 (bookworm), whose Python is 3.11;" \
         "$system runs Python $have, for which requirements.lock has no wheels." >&2
    echo "setup: run 'make test' and 'make demo' on Debian 12 (a machine, VM or container holding this folder" \
         "and ../shared beside it, as CI does). The plugin itself runs in this system's QGIS:" \
         "'make package', then Plugins > Install from ZIP." >&2
    exit 1
  fi
fi

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root apt-get install -y -qq --no-install-recommends $missing
fi

# Debian's wrapper passes --noversioncheck, which qgis_process rejects: every call fails.
if [ -f /etc/default/qgis ] && grep -q -- '--noversioncheck' /etc/default/qgis; then
  echo "setup: patching QGIS_OPTS in /etc/default/qgis (qgis_process rejects --noversioncheck)"
  as_root sed -i "s/^QGIS_OPTS=.*/QGIS_OPTS=''/" /etc/default/qgis
fi

# A venv over Debian's python so QGIS's embedded interpreter and ours see the same geo stack.
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (system site packages)"
  "$SYSTEM_PYTHON" -m venv --system-site-packages .venv
fi

# Exactly the lock: every package pinned with its hash, nothing resolved here (see `make lock`).
stamp=.venv/.oremap-lock
want=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the Python packages of requirements.lock into .venv"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements.lock \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$want" > "$stamp"
fi
# Refuse to go on with a drifted .venv (a package upgraded, added or missing by hand).
.venv/bin/python scripts/check_env.py
