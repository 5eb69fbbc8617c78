"""Refuse to test on a drifted .venv: installed packages must equal the system's lock exactly.

Run by scripts/setup.sh (so by `make test`, `make demo` and CI) with .venv's Python. Fails when pip
finds a broken requirement (`pip check`), when a locked package is missing or at another version, or
when .venv holds a package the lock does not name. The fix is printed with the differences.

The development setup runs on two systems, told apart by their Python (:data:`SYSTEMS`): Debian 12 (CI's,
``requirements.lock``) and Debian 13 (``requirements-debian13.lock``). ``check_env.py --which PYTHON_VERSION``
prints the system's line for scripts/setup.sh and scripts/lock.py, or nothing for another Python.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = "Rebuild it from the lock: rm -rf .venv && make setup (or, after editing requirements.txt: make lock)."

#: Python "major.minor" -> (system, lock, constraints, Debian packages that stand for requirements of
#: requirements.txt). Debian 13 takes torch from Debian (python3-torch 2.6.0, a CPU build): PyTorch publishes the
#: CPU wheels only on its own index, and PyPI's torch for Linux pulls gigabytes of CUDA libraries.
SYSTEMS = {
    "3.11": ("Debian 12 (bookworm)", "requirements.lock", "constraints.txt", {}),
    "3.13": ("Debian 13 (trixie)", "requirements-debian13.lock", "constraints-debian13.txt",
             {"torch": "python3-torch"}),
}


def system_for(version=None):
    """The :data:`SYSTEMS` entry of Python ``version`` ("3.13"; default: this one), or None."""
    return SYSTEMS.get(version or "%d.%d" % sys.version_info[:2])


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


def pip_requirements(system):
    """requirements.txt's direct requirements that pip installs on ``system`` (those its Debian packages stand for
    left out)."""
    direct = direct_requirements(os.path.join(ROOT, "requirements.txt"))
    return {name: version for name, version in direct.items() if name not in system[3]}


def pip_check(python, system):
    """``pip check``'s complaints, less those about the packages Debian stands in for on ``system``: Debian 13's
    torch 2.6.0 declares upstream's sympy==1.13.1 and setuptools, and Debian ships sympy 1.13.3 and leaves
    setuptools to those who build extensions (the tests pass with them)."""
    check = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "check"],
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if check.returncode == 0:
        return []
    debian = tuple(f"{name} " for name in system[3])
    return [line for line in check.stdout.splitlines() if line.strip() and not (debian and line.startswith(debian))]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--which"]:
        system = system_for(argv[1])
        if system:
            print("|".join([system[0], system[1], system[2], " ".join(system[3].values())]))
        return 0
    system = system_for()
    if system is None:
        print(f"check_env: no lock for Python {sys.version_info[0]}.{sys.version_info[1]} (scripts/setup.sh says "
              "which systems the development setup runs on).", file=sys.stderr)
        return 1
    lock = system[1]
    locked = read_lock(os.path.join(ROOT, lock))
    problems = differences(locked, installed())
    problems += requirement_problems(pip_requirements(system), locked)
    import importlib.util

    for name, package in system[3].items():   # looked up, not imported: importing torch takes seconds on every run
        if importlib.util.find_spec(name) is None:
            problems.append(f"  {name} is not installed: it is the Debian package {package} on {system[0]}")
    problems += ["  pip check: " + line for line in pip_check(sys.executable, system)]
    if problems:
        print(f".venv does not match {lock}:\n" + "\n".join(problems) + "\n" + FIX, file=sys.stderr)
        return 1
    print(f"setup: .venv matches {lock} ({len(locked)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
