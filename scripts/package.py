#!/usr/bin/env python3
"""Build dist/oremap-<version>.zip for QGIS "Install from ZIP", or deploy into a QGIS profile.

The zip holds one folder, ``oremap/``: the plugin's code, models, icon, metadata, licence, README, changelog
and user guide (``docs/``, with its screenshots); no tests, benchmarks, sample data, caches, compiled or build
files. ``test/test_release.py`` checks it against the official plugin repository's rules.
"""

import argparse
import os
import shutil
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = ["metadata.txt", "__init__.py", "plugin.py", "batch.py", "icon.svg", "LICENSE", "README.md", "CHANGELOG.md",
           "processing_provider", "algorithms", "core", "ui", "models", "docs"]
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
# compiled files (OreMap ships none; plugins.qgis.org refuses .pyc) and leftovers of runs
SKIP_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".aux.xml", ".oremap-partial.tif")


def plugin_files():
    """(absolute path, path inside the plugin folder) of every packaged file."""
    for entry in INCLUDE:
        path = os.path.join(ROOT, entry)
        if os.path.isfile(path):
            yield path, entry
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                if not name.endswith(SKIP_SUFFIXES):
                    full = os.path.join(folder, name)
                    yield full, os.path.relpath(full, ROOT)


def build_zip(version, dest=None):
    dest = dest or os.path.join(ROOT, "dist")
    os.makedirs(dest, exist_ok=True)
    target = os.path.join(dest, f"oremap-{version}.zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for full, rel in plugin_files():
            zf.write(full, os.path.join("oremap", rel))
    print(target)
    return target


def default_profile_plugins():
    if sys.platform.startswith("win"):
        base = os.path.join(os.environ.get("APPDATA", ""), "QGIS", "QGIS3")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Application Support/QGIS/QGIS3")
    else:
        base = os.path.expanduser("~/.local/share/QGIS/QGIS3")
    return os.path.join(base, "profiles", "default", "python", "plugins")


def deploy(plugins_dir):
    target = os.path.join(plugins_dir, "oremap")
    if os.path.islink(target) or os.path.isfile(target):
        os.remove(target)
    elif os.path.isdir(target):
        shutil.rmtree(target)
    for full, rel in plugin_files():
        dest = os.path.join(target, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(full, dest)
    print(f"Deployed to {target}. Restart QGIS and enable OreMap in Plugins > Manage and Install Plugins.")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("version")
    parser.add_argument("--deploy", action="store_true", help="copy into a QGIS profile instead of zipping")
    parser.add_argument("--dest", help="folder for the zip (default: dist/)")
    parser.add_argument("--plugins-dir", default=os.environ.get("QGIS_PLUGINS_DIR") or default_profile_plugins(),
                        help="profile plugin folder for --deploy (default: the default profile's)")
    args = parser.parse_args()
    if args.deploy:
        deploy(args.plugins_dir)
    else:
        build_zip(args.version, args.dest)


if __name__ == "__main__":
    main()
