"""The install lock: every direct requirement pinned to the lock's version, and the checker that stops a
drifted .venv (scripts/check_env.py) finds what it must."""

import importlib.util
import os

from conftest import ROOT


def _check_env():
    spec = importlib.util.spec_from_file_location("check_env", os.path.join(ROOT, "scripts", "check_env.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_direct_requirement_is_pinned_to_the_lock():
    env = _check_env()
    locked = env.read_lock(os.path.join(ROOT, "requirements.lock"))
    direct = env.direct_requirements(os.path.join(ROOT, "requirements.txt"))
    assert set(direct) == {"torch", "onnxruntime", "onnx", "pytest", "pytest-qgis", "skl2onnx"}
    assert env.requirement_problems(direct, locked) == []
    assert locked["torch"] == "2.13.0+cpu" and direct["torch"] == "2.13.0"


def test_the_checker_names_unpinned_and_drifted_packages(tmp_path):
    env = _check_env()
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
    checks the system Python before installing anything and says where the development setup runs."""
    import subprocess

    stub = tmp_path / "python3"
    stub.write_text("#!/bin/sh\necho 3.13\n")
    stub.chmod(0o755)
    env = dict(os.environ, OREMAP_SYSTEM_PYTHON=str(stub), PATH="/usr/bin:/bin")
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "setup.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "pinned to Debian 12 (bookworm), whose Python is 3.11" in proc.stderr
    assert "runs Python 3.13, for which requirements.lock has no wheels" in proc.stderr
    assert "'make package', then Plugins > Install from ZIP" in proc.stderr
