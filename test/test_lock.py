"""The install lock: every direct requirement pinned to the lock's version, and the checker that stops a
drifted .venv (scripts/check_env.py) finds what it must."""

import os
import sys

from conftest import ROOT
from conftest import check_env


def test_every_direct_requirement_is_pinned_to_the_lock():
    env = check_env()
    locked = env.read_lock(os.path.join(ROOT, "requirements.lock"))
    direct = env.direct_requirements(os.path.join(ROOT, "requirements.txt"))
    assert set(direct) == {"torch", "onnxruntime", "onnx", "pytest", "pytest-qgis", "skl2onnx", "fsspec"}
    assert env.requirement_problems(direct, locked) == []
    assert locked["torch"] == "2.13.0+cpu" and direct["torch"] == "2.13.0"


def test_the_checker_names_unpinned_and_drifted_packages(tmp_path):
    env = check_env()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nonnx\npytest==9.1.0  # too old\nTorch==2.13.0\nextra_pkg==1.0\n")
    locked = {"onnx": "1.23.2", "pytest": "9.2.0", "torch": "2.13.0+cpu"}
    problems = env.requirement_problems(env.direct_requirements(str(requirements)), locked)
    assert problems == ["  requirements.txt: extra-pkg==1.0 is not in the lock (run make lock)",
                        "  requirements.txt: onnx is not pinned (name==version, the lock's version)",
                        "  requirements.txt: pytest==9.1.0, the lock says 9.2.0 (run make lock)"]
    assert env.differences({"onnx": "1.23.2", "numpy": "1.24.2"}, {"onnx": "1.23.1", "sympy": "1.14.0"}) == [
        "  numpy==1.24.2 is in the lock but not installed", "  onnx: installed 1.23.1, the lock says 1.23.2",
        "  sympy 1.14.0 is installed but not in the lock"]


def test_setup_on_another_python_stops_first_and_says_why(tmp_path):
    """On Debian 13 (Python 3.13, numpy 2.2) pip stopped deep in the lock on a missing Python 3.11 wheel. setup.sh now
    checks the system Python before installing anything: Debian 12's 3.11 and Debian 13's 3.13 have a lock; on
    another (Ubuntu 24.04's 3.12) it says where the development setup runs."""
    import subprocess

    stub = tmp_path / "python3"
    stub.write_text('#!/bin/sh\nif [ "$1" = -c ]; then echo 3.12; else exec /usr/bin/python3 "$@"; fi\n')  # Python 3.12
    stub.chmod(0o755)
    env = dict(os.environ, OREMAP_SYSTEM_PYTHON=str(stub), PATH="/usr/bin:/bin")
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "setup.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "runs on Debian 12 (bookworm, Python 3.11; CI's) and Debian 13 (trixie, Python 3.13)" in proc.stderr
    assert "runs Python 3.12, for which no lock has wheels" in proc.stderr
    assert "'make package', then Plugins > Install from ZIP" in proc.stderr


def test_each_system_has_its_lock_with_the_same_pins(capsys):
    """Debian 13 has its own lock (Python 3.13 wheels, Debian's numpy 2.2 kept) with the same direct requirements at
    the same versions as Debian 12's, less torch, which is Debian's python3-torch there; its transitive pins are the
    optional-package installer's, so the tests run what the installer puts into QGIS's Python."""
    env = check_env()
    assert env.main(["--which", "3.13"]) == 0
    assert capsys.readouterr().out == ("Debian 13 (trixie)|requirements-debian13.lock|constraints-debian13.txt|"
                                       "python3-torch\n")
    assert env.main(["--which", "3.12"]) == 0 and capsys.readouterr().out == ""
    bookworm = env.read_lock(os.path.join(ROOT, "requirements.lock"))
    trixie = env.read_lock(os.path.join(ROOT, "requirements-debian13.lock"))
    direct = env.pip_requirements(env.system_for("3.13"))
    assert set(direct) == {"onnxruntime", "onnx", "pytest", "pytest-qgis", "skl2onnx", "fsspec"}
    assert "torch" not in trixie
    assert env.requirement_problems(direct, trixie) == []
    assert all(bookworm[name] == version for name, version in direct.items())
    from oremap.core.engine import package_installer as pi

    pins = {env.canonical(name): version for group in pi.read_pins().values() for name, version, _ in group["packages"]}
    shared = set(pins) & set(trixie)
    assert {"onnx", "onnxruntime", "protobuf", "ml-dtypes", "flatbuffers", "skl2onnx"} <= shared
    assert all(pins[name] == trixie[name] for name in shared)


def test_pip_check_tolerates_only_debians_own_metadata_of_what_debian_stands_in_for(tmp_path):
    """Debian 13's torch 2.6.0 declares upstream's sympy==1.13.1 and setuptools, while Debian ships sympy 1.13.3 and no
    setuptools: pip check fails on every Debian 13 machine. Those lines are left out there; any other stays."""
    env = check_env()
    stub = tmp_path / "python"
    stub.write_text("#!/bin/sh\necho 'torch 2.6.0+debian has requirement sympy==1.13.1, but you have sympy 1.13.3.'\n"
                    "echo 'onnx 1.23.2 requires protobuf, which is not installed.'\nexit 1\n")
    stub.chmod(0o755)
    kept = env.pip_check(str(stub), env.system_for("3.13"))
    assert kept == ["onnx 1.23.2 requires protobuf, which is not installed."]
    assert len(env.pip_check(str(stub), env.system_for("3.11"))) == 2


def test_a_missing_debian_package_is_named_with_its_apt_name(monkeypatch, capsys):
    """On Debian 13 torch is the apt package python3-torch, not a pip pin: a .venv that matches the lock but lacks it
    (built with --system-site-packages before the package was installed) must fail and name the package to install,
    not pass until the first torch test."""
    env = check_env()
    version = "%d.%d" % sys.version_info[:2]
    name, lock, constraints, _ = env.system_for()
    monkeypatch.setitem(env.SYSTEMS, version, (name, lock, constraints, {"oremap_absent_module": "python3-absent"}))
    monkeypatch.setattr(env, "installed", lambda: env.read_lock(os.path.join(ROOT, lock)))
    monkeypatch.setattr(env, "pip_check", lambda python, system: [])
    monkeypatch.setattr(env, "pip_requirements", lambda system: {})
    assert env.main([]) == 1
    err = capsys.readouterr().err
    assert f"  oremap_absent_module is not installed: it is the Debian package python3-absent on {name}" in err
    monkeypatch.setitem(env.SYSTEMS, version, (name, lock, constraints, {"json": "python3-json"}))  # present
    assert env.main([]) == 0
    assert capsys.readouterr().out.startswith(f"setup: .venv matches {lock}")
