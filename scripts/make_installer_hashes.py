#!/usr/bin/env python3
"""Write core/engine/optional_packages.hashes: the sha256 of every wheel of each version the optional-package
installer pins (core/engine/optional_packages.txt, the older onnxruntime of Intel and older Macs, PyPI's torch of
Apple-silicon Macs), read from the package index, so that *Install optional packages* runs pip with
``--require-hashes`` and installs no file the project did not see.

    python3 scripts/make_installer_hashes.py [--index https://pypi.org/simple]

torch's CPU build for Linux and Windows comes from PyTorch's own index, which lists no hashes the project can
check here: it is installed by name and version alone (see ``package_installer.install``).
"""

import argparse
import os
import re
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def wanted():
    """The installer module, and the sorted ``(name, version)`` pairs it may ask pip for."""
    from core.engine import package_installer as module

    pairs = set()
    for group in module.read_pins().values():
        for name, version, _ in group["packages"]:
            pairs.add((name, version))
            if module.normalise(name) == "torch":
                pairs.add((name, version.split("+")[0]))   # macOS: PyPI's build
    pairs.add(("onnxruntime", module.ONNXRUNTIME_OLDER_MACS))
    return module, sorted(pairs)


def wheel_hashes(index, name, version, normalise):
    """sha256 of the wheels of ``name`` ``version`` listed by the simple index."""
    url = f"{index.rstrip('/')}/{normalise(name)}/"
    with urllib.request.urlopen(url, timeout=60) as response:
        page = response.read().decode("utf-8", "replace")
    stem = re.sub(r"[-_.]+", "_", name).lower()
    found = []
    for filename, digest in re.findall(r'href="[^"]*/([^/"#]+\.whl)#sha256=([0-9a-f]{64})"', page):
        parts = filename.split("-")
        if re.sub(r"[-_.]+", "_", parts[0]).lower() == stem and parts[1] == version:
            found.append(digest)
    return sorted(set(found))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default="https://pypi.org/simple")
    args = parser.parse_args(argv)
    module, pairs = wanted()
    lines = ["# sha256 of every wheel of the versions core/engine/optional_packages.txt pins, from the package index",
             "# (scripts/make_installer_hashes.py writes it; test/test_package_installer.py checks it against the pins",
             "# and requirements.lock). Without a line here a package is installed by name and version alone:",
             "# torch's CPU build, from PyTorch's own index.", ""]
    for name, version in pairs:
        if "+" in version:
            continue
        digests = wheel_hashes(args.index, name, version, module.normalise)
        if not digests:
            raise SystemExit(f"no wheel of {name} {version} in {args.index}")
        lines += [f"{module.normalise(name)}=={version} sha256:{d}" for d in digests]
        print(f"{name} {version}: {len(digests)} wheels")
    path = os.path.join(ROOT, "core", "engine", "optional_packages.hashes")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
