"""The optional-package installer (core/engine/package_installer.py): pins from requirements.lock, a computed --no-deps
list that never includes QGIS's numpy, installation from a local wheel folder (offline) into a fresh profile
folder, the sys.path hook, refusals, and a real install of onnx/onnxruntime for a Python without them."""

import base64
import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
import zipfile

import pytest

from conftest import AVIRIS_NG, ROOT, check_env, qgis_env

from oremap.core.engine import package_installer as pi

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's Python: QGIS and numpy, no onnx (a stock QGIS's Python)


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(folder, name, version, modules):
    """A pure-Python wheel of ``modules`` ({file name: source}) in ``folder``; its path."""
    dist = f"{name}-{version}.dist-info"
    files = dict(modules)
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files[f"{dist}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: oremap-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [_record_line(n, s.encode()) for n, s in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as zf:
        for n, s in files.items():
            zf.writestr(n, s)
    return path


def write_pins(path, text):
    path.write_text(text)
    return pi.read_pins(str(path))


def lock_pins(name="requirements.lock"):
    pins = {}
    with open(os.path.join(ROOT, name)) as fh:
        for line in fh:
            m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
            if m:
                pins[pi.normalise(m.group(1))] = m.group(2)
    return pins


def test_pins_agree_with_the_lock_and_cover_each_package_requirements():
    lock = lock_pins()
    system = check_env().system_for()
    here = lock_pins(system[1]) if system else {}   # the lock of this system's .venv (none: no development setup)
    pins = pi.read_pins()
    assert set(pins) == {"run", "torch", "skl2onnx"}
    for group, spec in pins.items():
        names = {pi.normalise(n) for n, _, _ in spec["packages"]}
        hosts = {pi.normalise(n) for n, _ in spec["host"]}
        assert "numpy" in hosts or group == "torch"
        assert not names & {"numpy", "scipy", "scikit-learn", "gdal", "rasterio"}
        for name, version, _ in spec["packages"]:
            assert lock[pi.normalise(name)] == version, name
            if pi.normalise(name) not in here:
                continue   # Debian 13: its .venv holds its own lock; Debian's torch stands for torch's packages
            # every unconditional requirement of an installed package is in the group or a host package
            for req in importlib.metadata.requires(name) or []:
                if "extra ==" in req:
                    continue
                if ";" in req and "python_version" in req:
                    continue
                dep = pi.normalise(re.match(r"[A-Za-z0-9_.-]+", req).group())
                assert dep in names | hosts, f"{group}: {name} needs {req}"


def test_plan_keeps_good_enough_host_packages_and_refuses_old_numpy():
    versions = {"numpy": "1.24.2", "packaging": "23.0", "typing_extensions": "4.4.0", "protobuf": "6.31.1",
                "onnx": "1.20.0"}
    plan = pi.plan(["run"], versions=versions.get)
    # onnx is asked for by name: its pin, even though QGIS's Python has another version
    assert plan["install"] == ["onnx==1.23.2", "onnxruntime==1.32.0", "ml_dtypes==0.5.4",
                               "typing_extensions==4.16.0", "flatbuffers==25.12.19"]
    assert plan["kept"] == [("protobuf", "6.31.1"), ("packaging", "23.0")]
    assert plan["problems"] == []
    # torch needs typing_extensions >= 4.10: a host 4.8 is good for onnx but not for both
    both = pi.plan(["run", "torch"], versions={**versions, "typing_extensions": "4.8.0", "jinja2": "3.1.2"}.get)
    assert "typing_extensions==4.16.0" in both["install"]
    assert "torch==2.13.0+cpu" in both["install"]
    assert not any(r.startswith("numpy") for r in both["install"])
    old = pi.plan(["run"], versions={**versions, "numpy": "1.21.5"}.get)
    assert len(old["problems"]) == 1 and "numpy 1.21.5" in old["problems"][0]
    missing = pi.plan(["skl2onnx"], versions=versions.get)
    assert "scikit-learn" in missing["problems"][0]
    with pytest.raises(pi.InstallError, match="Unknown package group"):
        pi.plan(["tensorflow"], versions=versions.get)


def test_version_comparison():
    assert pi.at_least("1.24.2", "1.23.3") and not pi.at_least("1.23.2", "1.23.3")
    assert pi.at_least("2.13.0+cpu", "2.13") and pi.at_least("1.10", "1.9.9") and pi.at_least("4.16.0", "0")
    assert pi.version_tuple("2.0.0rc1") == (2, 0, 0)


def test_install_from_a_local_wheel_folder_and_import_through_the_hook(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "oremap_probe", "1.2.0", {"oremap_probe.py": "ANSWER = 42\n"})
    make_wheel(str(wheels), "oremap_probe_dep", "0.3.0", {"oremap_probe_dep/__init__.py": "NAME = 'dep'\n"})
    pins = write_pins(tmp_path / "pins.txt", "[probe]  a probe\noremap_probe==1.2.0\noremap_probe_dep==0.3.0  >=0.1\n"
                                             "host numpy>=1.20\n")
    profile = tmp_path / "profile"
    folder = pi.folder_for_profile(str(profile))
    lines, percents = [], []
    sys_path = list(sys.path)
    try:
        result = pi.install(["probe"], folder, find_links=str(wheels), log=lines.append, progress=percents.append,
                            pins=pins)
        assert sys.path[0] == folder  # the hook: first on the path
    finally:
        sys.path[:] = sys_path
    assert result["installed"] == ["oremap_probe==1.2.0", "oremap_probe_dep==0.3.0"]
    assert percents[-1] == 100 and percents == sorted(percents)
    assert any("--no-deps" in line and "--no-index" in line for line in lines)
    assert sorted(os.listdir(folder)) == ["oremap_probe-1.2.0.dist-info", "oremap_probe.py",
                                          "oremap_probe_dep", "oremap_probe_dep-0.3.0.dist-info"]
    # one folder per Python version, nothing of the staging folder left beside it
    assert folder == str(profile / "python" / "oremap-packages" / sys.implementation.cache_tag)
    assert os.listdir(os.path.dirname(folder)) == [sys.implementation.cache_tag]
    assert pi.folder_version("oremap_probe", folder) == "1.2.0"
    # a fresh Python sees the package only through the hook
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from oremap.core.engine import package_installer as pi\n"
            "try:\n import oremap_probe\nexcept ImportError: print('absent')\n"
            "print(pi.activate(sys.argv[2])); import oremap_probe, oremap_probe_dep\n"
            "print(oremap_probe.ANSWER, oremap_probe_dep.NAME, oremap_probe.__file__)")
    proc = subprocess.run([SYSTEM_PYTHON, "-c", code, os.path.join(ROOT, ".build", "plugins"), folder],
                          capture_output=True, text=True, timeout=60, env=qgis_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["absent", "True", f"42 dep {os.path.join(folder, 'oremap_probe.py')}"]
    # a second run with an upgraded pin replaces the old version and its metadata
    make_wheel(str(wheels), "oremap_probe", "1.3.0", {"oremap_probe.py": "ANSWER = 43\n"})
    pins = write_pins(tmp_path / "pins.txt", "[probe]  a probe\noremap_probe==1.3.0\n")
    try:
        pi.install(["probe"], folder, find_links=str(wheels), pins=pins)
    finally:
        sys.path[:] = sys_path
    assert "oremap_probe-1.2.0.dist-info" not in os.listdir(folder)
    assert open(os.path.join(folder, "oremap_probe.py")).read() == "ANSWER = 43\n"


def test_a_package_with_a_file_missing_is_not_intact_under_every_python(tmp_path, monkeypatch):
    """From Python 3.12 on, ``Distribution.files`` leaves out the files that are missing (Debian 13's QGIS runs 3.13,
    OSGeo4W's 3.12): a package stopped halfway looked whole and was never repaired. ``files`` is made to behave so
    here, on any Python; the check reads the RECORD itself."""
    import importlib.metadata

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "oremap_half", "1.0.0",
               {"oremap_half/__init__.py": "A = 1\n", "oremap_half/b.py": "B = 2\n"})
    folder = pi.folder_for_profile(str(tmp_path / "profile"))
    pins = write_pins(tmp_path / "pins.txt", "[probe]  a probe\noremap_half==1.0.0\n")
    pi.install(["probe"], folder, find_links=str(wheels), pins=pins)
    assert pi.folder_intact("oremap_half", folder)
    whole = importlib.metadata.PathDistribution.files
    monkeypatch.setattr(importlib.metadata.PathDistribution, "files", property(
        lambda self: [f for f in (whole.fget(self) or []) if os.path.exists(self.locate_file(f))]))
    os.remove(os.path.join(folder, "oremap_half", "b.py"))
    assert all(f.name != "b.py" for d in importlib.metadata.distributions(path=[folder]) for f in d.files)
    assert not pi.folder_intact("oremap_half", folder)
    assert pi.plan(["probe"], folder, pins=pins)["install"] == ["oremap_half==1.0.0"]


def test_every_pinned_wheel_has_its_hashes_and_the_locks_are_among_them():
    """pip ran with name==version only: any file of that name and version (another index in the user's pip
    settings, a file added to a release) was installed and its code run in QGIS. The hashes of every wheel of each
    pinned version are recorded (scripts/make_installer_hashes.py); the lock's, which the tests ran, are among
    them. torch's CPU build alone (PyTorch's index) has none."""
    hashes = pi.read_hashes()
    wanted = {(pi.normalise(n), v) for g in pi.read_pins().values() for n, v, _ in g["packages"]}
    wanted |= {("torch", "2.13.0"), ("onnxruntime", pi.ONNXRUNTIME_OLDER_MACS)}   # the Mac builds
    unhashed = {(n, v) for n, v in wanted if f"{n}=={v}" not in hashes}
    assert unhashed == {("torch", "2.13.0+cpu")}
    assert {tuple(k.split("==")) for k in hashes} == wanted - unhashed   # nothing stale
    locked = {}
    with open(os.path.join(ROOT, "requirements.lock")) as fh:
        for name, version, digests in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]+(?: \\)?\n)+)",
                                                 fh.read(), re.M):
            locked[f"{pi.normalise(name)}=={version}"] = set(re.findall(r"sha256:([0-9a-f]+)", digests))
    shared = set(locked) & set(hashes)
    assert {"onnx==1.23.2", "onnxruntime==1.32.0", "skl2onnx==1.20.0", "protobuf==7.36.2"} <= shared
    assert all(locked[k] <= set(hashes[k]) for k in shared)


def test_hashed_packages_are_installed_only_when_their_file_matches(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    path = make_wheel(str(wheels), "oremap_sure", "1.0.0", {"oremap_sure.py": "A = 1\n"})
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    pins = write_pins(tmp_path / "pins.txt", "[probe]  a probe\noremap_sure==1.0.0\n")
    folder = pi.folder_for_profile(str(tmp_path / "profile"))
    lines = []
    with pytest.raises(pi.InstallError) as err:
        pi.install(["probe"], folder, find_links=str(wheels), pins=pins, log=lines.append,
                   hashes={"oremap-sure==1.0.0": ["0" * 64]})
    assert err.value.fix.startswith("A file of the package index differs from the one OreMap was tested with")
    assert any("--require-hashes" in line for line in lines) and not os.path.exists(folder)
    done = pi.install(["probe"], folder, find_links=str(wheels), pins=pins, hashes={"oremap-sure==1.0.0": [digest]})
    assert done["installed"] == ["oremap_sure==1.0.0"] and pi.folder_version("oremap_sure", folder) == "1.0.0"
    assert pi.hashed_requirements(["oremap_sure==1.0.0", "torch==2.13.0+cpu"], {"oremap-sure==1.0.0": ["ab"]}) == (
        ["oremap_sure==1.0.0 --hash=sha256:ab"], ["torch==2.13.0+cpu"])


def test_a_package_with_a_console_script_is_whole_once_installed(tmp_path):
    """pip records a console script outside the package folder ('../../bin/...'), and the staging 'bin' is not
    moved in: onnx, onnxruntime, torch and sympy were never whole, so every later run installed them again, and
    once they were loaded it refused ('in use: restart QGIS')."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "oremap_tool", "1.0.0", {
        "oremap_tool.py": "def main():\n    return 0\n",
        "oremap_tool-1.0.0.dist-info/entry_points.txt": "[console_scripts]\noremap-tool = oremap_tool:main\n"})
    folder = pi.folder_for_profile(str(tmp_path / "profile"))
    pins = write_pins(tmp_path / "pins.txt", "[probe]  a probe\noremap_tool==1.0.0\n")
    pi.install(["probe"], folder, find_links=str(wheels), pins=pins)
    record = next(d for d in importlib.metadata.distributions(path=[folder])).read_text("RECORD")
    assert "../../bin/oremap-tool" in record.replace("\\", "/")
    assert pi.folder_intact("oremap_tool", folder)
    assert pi.plan(["probe"], folder, pins=pins)["install"] == []


def test_a_package_in_the_folder_is_not_installed_again_nor_replaced_while_loaded(tmp_path):
    """Installing again (the 'run' group is ticked by default, so adding torch later asked for onnx again) kept
    nothing of what was there: pip reinstalled it, and on Windows the loaded onnxruntime DLLs stopped the replacement
    halfway, leaving a package without its __init__.py. A package at its pin in the folder is now left alone, and one
    loaded in this session is refused before anything is moved."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "oremap_loaded", "1.0.0", {"oremap_loaded/__init__.py": "ANSWER = 1\n"})
    make_wheel(str(wheels), "oremap_loaded", "1.1.0", {"oremap_loaded/__init__.py": "ANSWER = 2\n"})
    folder = pi.folder_for_profile(str(tmp_path / "profile"))
    first = write_pins(tmp_path / "pins.txt", "[probe]  a probe\noremap_loaded==1.0.0\n")
    sys_path = list(sys.path)
    try:
        done = pi.install(["probe"], folder, find_links=str(wheels), pins=first)
        assert done["installed"] == ["oremap_loaded==1.0.0"]
        assert pi.plan(["probe"], folder, pins=first)["install"] == []
        lines = []
        assert pi.install(["probe"], folder, find_links=str(wheels), pins=first, log=lines.append)["installed"] == []
        assert "Nothing to install: every package is already there." in lines
        import oremap_loaded

        assert oremap_loaded.ANSWER == 1
        newer = write_pins(tmp_path / "pins2.txt", "[probe]  a probe\noremap_loaded==1.1.0\n")
        with pytest.raises(pi.InstallError) as err:
            pi.install(["probe"], folder, find_links=str(wheels), pins=newer)
        assert "oremap_loaded is in use in this QGIS session" in err.value.message
        assert err.value.fix.startswith("Restart QGIS")
        assert pi.folder_version("oremap_loaded", folder) == "1.0.0"
        assert open(os.path.join(folder, "oremap_loaded", "__init__.py")).read() == "ANSWER = 1\n"
        assert os.listdir(os.path.dirname(folder)) == [sys.implementation.cache_tag]  # no staging folder left
        del sys.modules["oremap_loaded"]  # as after a restart
        pi.install(["probe"], folder, find_links=str(wheels), pins=newer)
        assert pi.folder_version("oremap_loaded", folder) == "1.1.0"
        # a package at its pin with files missing (an installation stopped halfway) is installed again: repaired
        os.remove(os.path.join(folder, "oremap_loaded", "__init__.py"))
        assert not pi.folder_intact("oremap_loaded", folder)
        assert pi.plan(["probe"], folder, pins=newer)["install"] == ["oremap_loaded==1.1.0"]
        pi.install(["probe"], folder, find_links=str(wheels), pins=newer)
        assert pi.folder_intact("oremap_loaded", folder)
        # a namespace package (protobuf's google/, no __init__.py) in use is seen through its submodules
        os.makedirs(os.path.join(folder, "oremap_ns", "inner"))
        with open(os.path.join(folder, "oremap_ns", "inner", "__init__.py"), "w") as handle:
            handle.write("X = 1\n")
        import oremap_ns.inner  # noqa: F401

        assert pi.loaded_from(folder, ["oremap_ns"]) == ["oremap_ns"]
        import torch  # noqa: F401  torch.classes answers any attribute, __path__ too, with an object of its own

        assert pi.loaded_from(folder, ["oremap_ns"]) == ["oremap_ns"]
    finally:
        sys.path[:] = sys_path
        for name in ("oremap_loaded", "oremap_ns", "oremap_ns.inner"):
            sys.modules.pop(name, None)


def test_install_refuses_and_leaves_nothing(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "oremap_probe", "1.2.0", {"oremap_probe.py": "ANSWER = 42\n"})
    folder = pi.folder_for_profile(str(tmp_path / "profile"))
    # QGIS's numpy too old for the set: refused before pip runs, naming numpy
    pins = write_pins(tmp_path / "pins.txt", "[probe]  a probe\noremap_probe==1.2.0\nhost numpy>=99.0\n")
    with pytest.raises(pi.InstallError, match=r"numpy \S+, older than the 99.0"):
        pi.install(["probe"], folder, find_links=str(wheels), pins=pins)
    assert not (tmp_path / "profile").exists()
    # a pin that no wheel provides: pip fails, its message is passed on, nothing is written
    pins = write_pins(tmp_path / "pins.txt", "[probe]  a probe\noremap_probe==1.2.0\noremap_probe_dep==9.9\n")
    with pytest.raises(pi.InstallError, match="No matching distribution found for oremap_probe_dep==9.9"):
        pi.install(["probe"], folder, find_links=str(wheels), pins=pins)
    assert os.listdir(tmp_path / "profile" / "python") == []


def test_missing_package_hint_points_to_the_installer():
    from oremap.core.engine import dependencies

    assert "Plugins > OreMap > Install optional packages" in dependencies.install_hint(["onnx"])


def repack_installed(dist_name, folder):
    """A wheel of an installed distribution (its files as RECORD lists them), so a test can install real
    packages offline from what this machine already has."""
    dist = importlib.metadata.distribution(dist_name)
    base = str(dist.locate_file(""))
    tags = [line.split(":", 1)[1].strip() for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag:")]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    parts = [sorted({tag.split("-")[i] for tag in tags}) for i in range(3)]  # py2.py3-none-any style
    path = os.path.join(folder, f"{name}-{dist.version}-{'-'.join('.'.join(p) for p in parts)}.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for entry in dist.files:
            rel = str(entry)
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(("INSTALLER", "REQUESTED",
                                                                             "direct_url.json")):
                continue
            zf.write(os.path.join(base, rel), rel)
    return path


@pytest.mark.slow
def test_real_onnx_install_into_a_fresh_profile_then_classify_spectral_cnn(tmp_path):
    """A Python without onnx (Debian's, as in a stock QGIS): onnx, onnxruntime and the dependencies it lacks are
    installed from wheels of this machine into a fresh profile with the Debian pip; qgis_process, without the
    project's .venv, then loads the plugin (whose hook puts the folder on sys.path) and classifies a cube with
    the bundled CNN."""
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import onnx"], capture_output=True)
    if check.returncode == 0:
        pytest.skip("Debian's Python already has onnx: this test needs a Python without it")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # what Debian's Python lacks, computed by the installer itself in that Python
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from oremap.core.engine import package_installer as pi\n"
            "print(json.dumps(pi.plan(['run'])))")
    proc = subprocess.run([SYSTEM_PYTHON, "-c", code, os.path.join(ROOT, ".build", "plugins")], capture_output=True,
                          text=True, timeout=60, env=qgis_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    import json

    plan = json.loads(proc.stdout)
    assert plan["problems"] == []
    assert {"onnx==1.23.2", "onnxruntime==1.32.0"} <= set(plan["install"])
    for requirement in plan["install"]:
        repack_installed(requirement.split("==")[0], str(wheels))
    env = qgis_env(tmp_path)
    venv_bin = os.path.join(ROOT, ".venv", "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    exe = "/usr/bin/qgis_process"
    subprocess.run([exe, "plugins", "enable", "oremap"], env=env, check=True, capture_output=True, timeout=120)
    out = tmp_path / "classes.tif"
    run = [exe, "--json", "run", "oremap:classify_spectral_cnn", "--", f"INPUT={AVIRIS_NG}", "MODEL=0",
           f"OUTPUT_CLASSES={out}"]
    # before: the algorithm refuses and points to the installer
    proc = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Install optional packages" in proc.stdout + proc.stderr
    assert not out.exists()
    profile_dir = os.path.join(env["QGIS_CUSTOM_CONFIG_PATH"], "profiles", "default")
    folder = pi.folder_for_profile(profile_dir)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from oremap.core.engine import package_installer as pi\n"
            # wheels repacked from this machine's packages: not the index's files the hashes are of
            "r = pi.install(['run'], sys.argv[2], find_links=sys.argv[3], hashes={}); print(sorted(r['installed']))\n"
            "import onnx, onnxruntime, numpy; print(onnx.__file__, onnxruntime.__version__, numpy.__file__)")
    proc = subprocess.run([SYSTEM_PYTHON, "-c", code, os.path.join(ROOT, ".build", "plugins"), folder, str(wheels)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    onnx_file, ort_version, numpy_file = proc.stdout.strip().splitlines()[-1].split()
    assert onnx_file.startswith(folder) and ort_version == "1.32.0"
    assert numpy_file.startswith("/usr/lib/python3/dist-packages/")  # QGIS's numpy, untouched
    assert not any(name.startswith("numpy") for name in os.listdir(folder))
    proc = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["results"]["VALID_PIXELS"] == 100
    assert result["results"]["MODEL_USED"].endswith("usgs_minerals_cnn.onnx")
    # the same classes as the project's environment gives
    import numpy as np
    import rasterio

    from oremap.core.hyperspectral import mapping
    from oremap.core.engine.bundled import bundled_models

    reference = tmp_path / "reference.tif"
    mapping.cnn_classify_map(AVIRIS_NG, bundled_models("spectral_classification")[0][1], str(reference))
    with rasterio.open(out) as a, rasterio.open(reference) as b:
        assert np.array_equal(a.read(1), b.read(1))


def test_install_dialog_lists_groups_and_status(qgis_app, tmp_path):
    from oremap.ui.install_packages import InstallPackagesDialog

    dialog = InstallPackagesDialog(pi.folder_for_profile(str(tmp_path)))
    assert dialog.groups() == ["run"]  # onnx/onnxruntime by default; torch and skl2onnx on request
    assert [box.text() for box in dialog.boxes.values()][1].startswith("torch (CPU)")
    # this environment has onnx in QGIS's Python (the project's .venv), not in the profile folder
    assert f"<b>onnx</b>: {importlib.metadata.version('onnx')} (QGIS Python)" in dialog.status.text()
    dialog.close()


def test_macs_get_the_builds_that_exist_for_them(tmp_path, monkeypatch):
    """On a Mac the torch pin '2.13.0+cpu' matched nothing (the Mac builds carry no local label), onnxruntime 1.32 has
    wheels only for Apple silicon on macOS 14 or later, and PyTorch publishes no torch 2.13 for Intel Macs (each
    checked with pip download --platform on PyPI). The plan asks for what exists, and says why torch cannot be had."""
    versions = {"numpy": "1.26.4", "jinja2": "3.1.2"}.get
    linux = pi.plan(["run", "torch"], versions=versions)["install"]
    assert "torch==2.13.0+cpu" in linux and "onnxruntime==1.32.0" in linux
    for where, onnxruntime in ((("darwin", "arm64", (14, 5)), "1.32.0"), (("darwin", "arm64", (13, 6)), "1.23.2")):
        monkeypatch.setattr(pi, "host_platform", lambda where=where: where)
        mac = pi.plan(["run", "torch"], versions=versions)["install"]
        assert "torch==2.13.0" in mac and f"onnxruntime=={onnxruntime}" in mac
    monkeypatch.setattr(pi, "host_platform", lambda: ("darwin", "x86_64", (13, 6)))
    assert "onnxruntime==1.23.2" in pi.plan(["run"], versions=versions)["install"]
    with pytest.raises(pi.InstallError) as err:
        pi.plan(["run", "torch"], versions=versions)
    assert err.value.message == ("PyTorch publishes no torch 2.13.0 for Intel Macs, so the networks cannot be trained "
                                 "with this QGIS.")
    assert err.value.fix.startswith("Untick torch: the other packages install")
    # the commands the help gives for installing by hand name the same builds
    from oremap.core.engine import dependencies

    assert dependencies.install_command(["onnxruntime", "torch"]) == [
        "python -m pip install onnxruntime==1.23.2", "python -m pip install torch (no build for this Mac)"]
    monkeypatch.setattr(pi, "host_platform", lambda: ("darwin", "arm64", (14, 5)))
    assert dependencies.install_command(["torch"]) == ["python -m pip install torch==2.13.0"]
    # and the installer takes torch from PyPI there, not from PyTorch's CPU index (no Mac build carries '+cpu')
    # (PyPI's Mac build has its hashes recorded: installed with --require-hashes, from PyPI)
    calls = []

    def pip_command(python, requirements, target, **kwargs):
        hashed = kwargs.get("hashed_file")
        calls.append((requirements, {k: v for k, v in kwargs.items() if k != "hashed_file"},
                      open(hashed).read().split() if hashed else None))
        raise RuntimeError("stop before pip runs")

    monkeypatch.setattr(pi, "plan", lambda *a, **k: {"install": ["torch==2.13.0"], "kept": [], "problems": []})
    monkeypatch.setattr(pi, "pip_command", pip_command)
    with pytest.raises(RuntimeError, match="stop before pip runs"):
        pi.install(["torch"], folder=str(tmp_path / "packages"), python="python3")
    [(requirements, options, lines)] = calls
    assert requirements == [] and options == {"find_links": None} and lines[0] == "torch==2.13.0"
    assert len(lines) == 25 and all(line.startswith("--hash=sha256:") for line in lines[1:])
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".oremap-install-")]   # nor its requirements file
    # inside the QGIS app on macOS sys.executable is QGIS itself: its folder's python (the 3.44/4.x wrapper) and
    # bin/python3 are candidates; Apple's /usr/bin stub is not
    app = tmp_path / "QGIS-LTR 3.44.app" / "Contents" / "MacOS"
    (app / "bin").mkdir(parents=True)
    for name in ("QGIS", "python", "bin/python3"):
        (app / name).write_text("")
    monkeypatch.setattr(pi.sys, "platform", "darwin")
    monkeypatch.setattr(pi.sys, "executable", str(app / "QGIS"))
    for prefix in ("exec_prefix", "base_exec_prefix", "prefix"):   # the bundle's Python home
        monkeypatch.setattr(pi.sys, prefix, str(app.parent / "Frameworks"))
    monkeypatch.setattr(pi.shutil, "which", lambda name: "/usr/bin/python3" if name == "python3" else None)
    found = pi.python_candidates()
    assert str(app / "python") in found and str(app / "bin" / "python3") in found
    assert "/usr/bin/python3" not in found


def test_a_python_older_than_the_pins_need_is_refused_with_the_reason(tmp_path, monkeypatch):
    """Ubuntu 22.04's QGIS runs Python 3.10, for which onnxruntime 1.32 has no wheel: pip failed with 'No matching
    distribution' after a refusal that blamed numpy and advised an apt command that could not help."""
    monkeypatch.setattr(pi.sys, "version_info", (3, 10, 12))
    with pytest.raises(pi.InstallError) as err:
        pi.install(["run"], folder=str(tmp_path / "packages"))
    assert err.value.message == ("The packages OreMap is tested with need Python 3.11 or later; this QGIS runs "
                                 "Python 3.10.")
    assert "Ubuntu 24.04" in err.value.fix and "(SAM, unmixing, IDW" in err.value.fix
    assert not (tmp_path / "packages").exists()


def test_a_package_macos_refuses_to_load_is_said_so():
    from oremap.core.engine.dependencies import import_failure

    error = ImportError("dlopen(.../onnxruntime_pybind11_state.so, 0x0002): tried: '...' (code signature in <...> "
                        "'.../onnxruntime_pybind11_state.so' not valid for use in process: mapping process and "
                        "mapped file (non-platform) have different Team IDs)")
    message, fix = import_failure("numpy", error, "run models")
    assert message.startswith("The Python package 'numpy' is installed, but macOS refused to load its compiled")
    assert "different Team IDs" in fix and "restarting does not help" in fix and "Visual C++" not in fix


def test_no_interpreter_with_pip_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(pi, "python_candidates", lambda: [])
    with pytest.raises(pi.InstallError) as err:
        pi.find_python()
    assert "found no Python interpreter with pip" in err.value.message
    assert "apt install python3-pip" in err.value.fix
    # an interpreter of another Python version is not taken
    monkeypatch.setattr(pi, "python_candidates", lambda: [SYSTEM_PYTHON])
    monkeypatch.setattr(pi.sys, "version_info", (3, 7, 0))
    system = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    with pytest.raises(pi.InstallError, match=rf"is Python {re.escape(system)}, QGIS runs 3.7"):
        pi.find_python()


def test_dialog_runs_the_installer_in_a_thread_with_progress_and_log(qgis_app, tmp_path, monkeypatch):
    from qgis.PyQt.QtCore import QCoreApplication

    from oremap.ui import install_packages

    calls = []

    def fake_install(groups, folder, log=None, progress=None, is_canceled=None):
        calls.append((list(groups), folder))
        for step in (10, 60, 100):
            log(f"step {step}")
            progress(step)
        return {"installed": ["onnx==1.23.2"], "kept": [], "folder": folder}

    monkeypatch.setattr(install_packages.package_installer, "install", fake_install)
    folder = pi.folder_for_profile(str(tmp_path))
    dialog = install_packages.InstallPackagesDialog(folder)
    dialog.boxes["skl2onnx"].setChecked(True)
    dialog.start()
    assert not dialog.install_button.isEnabled()
    assert dialog.worker.wait(10000)
    for _ in range(20):
        QCoreApplication.processEvents()
    assert calls == [(["run", "skl2onnx"], folder)]
    assert dialog.progress.value() == 100
    assert dialog.log.toPlainText().splitlines()[:4] == [
        "step 10", "step 60", "step 100", f"Done. Installed onnx==1.23.2 into {folder}."]
    assert dialog.install_button.isEnabled()
    dialog.close()


def test_the_dask_hint_names_the_system_packages_and_pinned_versions():
    """The missing-Dask hint sent users to the installer, which does not install Dask, and its pip command had no
    versions. Each pip command now names the versions the tests run (the installer's pins, Debian's Dask: Debian 12's
    on Python 3.11, Debian 13's on 3.12 and later)."""
    from oremap.core.engine import dependencies

    hint = dependencies.install_hint(["distributed"])
    assert "Install optional packages" not in hint
    assert "sudo apt install python3-dask python3-distributed" in hint
    assert dependencies.dask_version((3, 11, 2)) == "2022.12.1" and dependencies.dask_version((3, 13)) == "2024.12.1"
    pinned = dependencies.dask_version()
    assert f"python -m pip install dask=={pinned} distributed=={pinned}" in hint
    pins = {name: version for group in pi.read_pins().values() for name, version, _ in group["packages"]}
    assert dependencies.install_command(["onnx", "onnxruntime", "torch"]) == [
        f"python -m pip install onnx=={pins['onnx']} onnxruntime=={pins['onnxruntime']}",
        f"python -m pip install torch=={pins['torch'].split('+')[0]} --index-url https://download.pytorch.org/whl/cpu"]
    both = dependencies.install_hint(["onnx", "distributed"])
    assert "Install optional packages (no administrator rights needed) installs onnx." in both
    try:   # the Dask the tests run is the version the hint pins
        import distributed
    except ImportError:
        return
    assert distributed.__version__.split("+")[0] == pinned


def test_scikit_learn_is_never_offered_through_pip(monkeypatch):
    """An algorithm needing scikit-learn refused with 'python -m pip install scikit-learn' (and the Settings page
    showed that line), while the same package's import message says never to pip-install it into QGIS: its wheels
    replace QGIS's numpy. Both now give the system's package."""
    from oremap.core.engine import dependencies
    from oremap.ui import settings_dialog

    assert dependencies.install_command(["sklearn"]) == []
    hint = dependencies.install_hint(["sklearn"])
    assert "pip install" not in hint and "scikit-learn==" not in hint
    assert "sudo apt install python3-sklearn" in hint and "Do not pip-install it into QGIS" in hint
    mixed = dependencies.install_hint(["sklearn", "onnx"])
    assert "python -m pip install onnx==" in mixed and "scikit-learn==" not in mixed
    monkeypatch.setattr(settings_dialog, "package_status", lambda: [("sklearn", None, "fits models")])
    monkeypatch.setattr(settings_dialog.compute, "cuda_support", lambda: {"onnxruntime": False, "torch": False,
                                                                          "name": None})
    html = settings_dialog.status_html()
    assert "sudo apt install python3-sklearn" in html and "pip install" not in html


def _legacy_package(parent, name, tag):
    """A package as 0.2.9 and earlier installed it, straight in ``oremap-packages``, built for wheel ``tag``."""
    dist = parent / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
    (parent / f"{name}.py").write_text("X = 1\n")


def test_packages_folder_is_per_python_version_and_an_older_release_folder_is_used_only_when_it_fits(tmp_path):
    """A QGIS upgrade keeps its profile while its Python may change (OSGeo4W: 3.9 -> 3.12); packages compiled
    for the old Python, first on sys.path, failed to import or shadowed QGIS's own. Each Python now has its own
    folder; the flat folder of 0.2.9 and earlier stays in use only while every package in it suits this Python."""
    major, minor = sys.version_info[:2]
    here, other = f"cp{major}{minor}", f"cp{major}{minor - 1}"
    tagged = str(tmp_path / "a" / "python" / "oremap-packages" / sys.implementation.cache_tag)
    assert pi.folder_for_profile(str(tmp_path / "a")) == tagged   # nothing installed yet
    # an earlier release's folder, built for this Python: still used, nothing to install again
    parent = tmp_path / "b" / "python" / "oremap-packages"
    _legacy_package(parent, "onnxruntime", f"{here}-{here}-manylinux_2_27_x86_64")
    _legacy_package(parent, "protobuf", "py3-none-any")
    assert pi.folder_for_profile(str(tmp_path / "b")) == str(parent)
    assert pi.unused_for_other_python(str(parent)) == ""
    # ... built for the Python before: not used; the versioned folder is, and the dialog says why
    parent = tmp_path / "c" / "python" / "oremap-packages"
    _legacy_package(parent, "onnxruntime", f"{other}-{other}-win_amd64")
    _legacy_package(parent, "protobuf", "py3-none-any")
    folder = pi.folder_for_profile(str(tmp_path / "c"))
    assert folder == str(parent / sys.implementation.cache_tag)
    assert pi.unused_for_other_python(folder) == (
        f"{parent} holds packages built for another Python version (installed by an earlier QGIS); they are not "
        f"used. Install the packages again for this QGIS's Python {major}.{minor}; the old ones can be deleted.")
    # once the versioned folder exists it is used, whatever the flat one holds
    parent = tmp_path / "b" / "python" / "oremap-packages"
    (parent / sys.implementation.cache_tag).mkdir()
    assert pi.folder_for_profile(str(tmp_path / "b")) == str(parent / sys.implementation.cache_tag)
    # wheel tags: exact CPython, stable ABI from an older minor, pure Python; not another minor nor Python 2
    assert pi.wheel_tag_fits("cp311-cp311-win_amd64", (3, 11)) and not pi.wheel_tag_fits("cp39-cp39-win_amd64", (3, 11))
    assert pi.wheel_tag_fits("cp38-abi3-manylinux2014_x86_64", (3, 12))
    assert not pi.wheel_tag_fits("cp312-abi3-macosx_11_0_arm64", (3, 11))
    assert pi.wheel_tag_fits("py2.py3-none-any", (3, 9)) and pi.wheel_tag_fits("py3-none-any", (3, 13))
    assert not pi.wheel_tag_fits("py2-none-any", (3, 11)) and not pi.wheel_tag_fits("garbage", (3, 11))
