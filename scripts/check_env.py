"""Refuse to test on a drifted .venv: installed packages must equal requirements.lock exactly.

Run by scripts/setup.sh (so by `make test`, `make demo` and CI) with .venv's Python. Fails when pip
finds a broken requirement (`pip check`), when a locked package is missing or at another version, or
when .venv holds a package the lock does not name. The fix is printed with the differences.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = "Rebuild it from the lock: rm -rf .venv && make setup (or, after editing requirements.txt: make lock)."


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path):
    pins = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
            if m:
                pins[canonical(m.group(1))] = m.group(2)
    return pins


def direct_requirements(path):
    """``{name: version or None}`` of requirements.txt (None: not pinned with ``==``)."""
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(==\s*(\S+))?", line)
                pins[canonical(m.group(1))] = m.group(3)
    return pins


def requirement_problems(direct, locked):
    """Direct requirements not pinned, or pinned to another version than the lock (local labels aside)."""
    problems = []
    for name, version in sorted(direct.items()):
        if version is None:
            problems.append(f"  requirements.txt: {name} is not pinned (name==version, the lock's version)")
        elif name not in locked:
            problems.append(f"  requirements.txt: {name}=={version} is not in the lock (run make lock)")
        elif locked[name].split("+")[0] != version.split("+")[0]:
            problems.append(f"  requirements.txt: {name}=={version}, the lock says {locked[name]} (run make lock)")
    return problems


def installed():
    out = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "freeze", "--local", "--all"],
                         check=True, text=True, stdout=subprocess.PIPE).stdout
    pins = {}
    for line in out.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
        elif line.strip() and not line.startswith("#"):
            pins[canonical(re.split(r"[ @]", line)[0])] = line.strip()  # editable or URL installs
    return pins


def differences(locked, have):
    problems = []
    for name in sorted(set(locked) | set(have)):
        want, got = locked.get(name), have.get(name)
        if want == got:
            continue
        if want is None:
            problems.append(f"  {name} {got} is installed but not in the lock")
        elif got is None:
            problems.append(f"  {name}=={want} is in the lock but not installed")
        else:
            problems.append(f"  {name}: installed {got}, the lock says {want}")
    return problems


def main():
    check = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "check"],
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    locked = read_lock(os.path.join(ROOT, "requirements.lock"))
    problems = differences(locked, installed())
    problems += requirement_problems(direct_requirements(os.path.join(ROOT, "requirements.txt")), locked)
    if check.returncode != 0:
        problems += ["  pip check: " + line for line in check.stdout.splitlines()]
    if problems:
        print(".venv does not match requirements.lock:\n" + "\n".join(problems) + "\n" + FIX, file=sys.stderr)
        return 1
    print(f"setup: .venv matches requirements.lock ({len(locked)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
