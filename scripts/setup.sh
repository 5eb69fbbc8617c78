#!/usr/bin/env bash
# Install everything OreMap needs on Debian 12 (bookworm) or Debian 13 (trixie). Idempotent: a second run
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

# The lock pins wheels (with their hashes) for one Python: requirements.lock Debian 12's 3.11 (keeping its numpy 1.24),
# requirements-debian13.lock Debian 13's 3.13 (torch from Debian there). On another system pip would stop deep in the
# lock on a missing wheel: say so before installing anything. scripts/check_env.py holds the table.
SYSTEM_PYTHON=${OREMAP_SYSTEM_PYTHON:-/usr/bin/python3}
LOCK=""
pick_lock() {
  local have which system
  have=$("$SYSTEM_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  which=$("$SYSTEM_PYTHON" scripts/check_env.py --which "$have" 2>/dev/null || true)
  if [ -z "$which" ]; then
    system=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-this system}" || echo "this system")
    echo "setup: OreMap's development setup runs on Debian 12 (bookworm, Python 3.11; CI's) and Debian 13" \
         "(trixie, Python 3.13); $system runs Python $have, for which no lock has wheels." >&2
    echo "setup: run 'make test' and 'make demo' on one of those (a machine, VM or container holding this folder" \
         "and ../shared beside it, as CI does). The plugin itself runs in this system's QGIS:" \
         "'make package', then Plugins > Install from ZIP." >&2
    exit 1
  fi
  LOCK=$(echo "$which" | cut -d'|' -f2)
  APT_PACKAGES="$APT_PACKAGES $(echo "$which" | cut -d'|' -f4)"
}
install_missing() {
  local missing="" p
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
}
# A bare container may have no Python yet: then the lock (and the system's own packages) are picked once the
# packages have brought it.
if [ -x "$SYSTEM_PYTHON" ]; then pick_lock; fi
install_missing
if [ -z "$LOCK" ]; then pick_lock; install_missing; fi

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
want=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the Python packages of $LOCK into .venv"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r "$LOCK" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$want" > "$stamp"
fi
# Refuse to go on with a drifted .venv (a package upgraded, added or missing by hand).
.venv/bin/python scripts/check_env.py
