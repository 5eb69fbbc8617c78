"""Where models run: compute device and threads of one algorithm run, and what was actually used.

A run opens a :func:`session` with the device the user chose (``"cpu"`` or
``"cuda"``) and a thread count (0 = every core). The model loaders ask it for
onnxruntime execution providers (:func:`onnx_providers`) and thread counts, and
record what they really got (:func:`note`), so the run can log the device it used::

    with compute.session("cuda", threads=4) as run:
        model = OnnxModel(path)          # CUDAExecutionProvider only where available
    print(run.used)                       # {"onnxruntime": "CPUExecutionProvider"}

Outside a session (plain Python) the environment variables ``OREMAP_DEVICE`` and
``OREMAP_THREADS`` give the defaults. CUDA is used only where onnxruntime or torch
reports it; otherwise the run falls back to the CPU and says so.
"""

import contextlib
import contextvars
import functools
import os
import sys
import threading

import numpy as np

from .dependencies import install_command, is_installed

DEVICE_SETTING = "OREMAP_DEVICE"
THREADS_SETTING = "OREMAP_THREADS"
DEVICES = {"cpu": "CPU", "cuda": "CUDA (NVIDIA GPU)"}

_CUDA = {}  # cached answers of cuda_support()
#: torch.onnx.export keeps process-wide state (two exports at once failed: 'GLOBALS.in_onnx_export must be False')
_EXPORT_LOCK = threading.Lock()


def cuda_support(refresh=False):
    """``{"onnxruntime": bool, "torch": bool, "name": str}``: which libraries report a CUDA device.

    Imports onnxruntime and torch when they are installed (torch takes a second); cached.
    """
    if _CUDA and not refresh:
        return dict(_CUDA)
    found = {"onnxruntime": False, "torch": False, "name": ""}
    if is_installed("onnxruntime"):
        try:
            import onnxruntime

            found["onnxruntime"] = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        except Exception:  # noqa: BLE001 - a broken install reports no CUDA
            pass
    if is_installed("torch"):
        try:
            import torch

            found["torch"] = bool(torch.cuda.is_available())
            if found["torch"]:
                found["name"] = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001
            pass
    _CUDA.clear()
    _CUDA.update(found)
    return dict(found)


def cuda_support_if_cheap():
    """:func:`cuda_support` when answering costs nothing (asked before in this session, or onnxruntime and torch
    each imported already or not installed), else None: importing them takes seconds, which a settings page
    built on the GUI thread (QGIS builds every options page when its Options dialog opens) must not cost."""
    if _CUDA or all(name in sys.modules or not is_installed(name) for name in ("onnxruntime", "torch")):
        return cuda_support()
    return None


def available_devices(support=None):
    """Devices to offer: ``["cpu"]``, plus ``"cuda"`` when onnxruntime or torch reports one (in ``support``, a
    :func:`cuda_support` answer; default: ask)."""
    support = cuda_support() if support is None else support
    return ["cpu"] + (["cuda"] if support["onnxruntime"] or support["torch"] else [])


def normalise_device(value):
    """``"cpu"`` or ``"cuda"`` from a setting value (name, label or index); unknown -> ``"cpu"``."""
    text = str(value or "").strip().lower()
    if text in ("1", "cuda", DEVICES["cuda"].lower()) or text.startswith("cuda"):
        return "cuda"
    return "cpu"


def _env_threads():
    try:
        return max(0, int(os.environ.get(THREADS_SETTING, "0") or 0))
    except ValueError:
        return 0


class ComputeRun:
    """Device and threads of one run, and what the model loaders used (``used``: library -> text)."""

    def __init__(self, device=None, threads=None):
        self.requested = normalise_device(os.environ.get(DEVICE_SETTING) if device is None else device)
        self.threads = _env_threads() if threads is None else max(0, int(threads or 0))
        self.used = {}
        self._torch_threads = None

    @property
    def cuda_wanted(self):
        return self.requested == "cuda"

    def fallback_message(self):
        """Why CUDA is not used although chosen, or ``""``."""
        if not self.cuda_wanted:
            return ""
        support = cuda_support()
        if support["onnxruntime"] or support["torch"]:
            return ""
        return ("The compute device is set to CUDA, but neither onnxruntime nor torch reports a CUDA device "
                "here: running on the CPU.")

    def summary(self):
        """One line: the device(s) actually used, e.g. ``onnxruntime: CPUExecutionProvider``."""
        if not self.used:
            return "CPU (numpy; no neural network in this run)"
        return "; ".join(f"{lib}: {what}" for lib, what in sorted(self.used.items()))


_CURRENT = contextvars.ContextVar("oremap_compute_run", default=None)


@contextlib.contextmanager
def session(device=None, threads=None):
    """Run the block with this device and thread count; yields the :class:`ComputeRun`.

    torch's thread count, if this session changed it, is restored at the end.
    """
    run = ComputeRun(device, threads)
    token = _CURRENT.set(run)
    try:
        yield run
    finally:
        _CURRENT.reset(token)
        if run._torch_threads is not None:
            import torch

            torch.set_num_threads(run._torch_threads)


def current():
    """The run in progress, or one from the environment variables outside a session."""
    run = _CURRENT.get()
    return run if run is not None else ComputeRun()


def note(library, what):
    """Record what ``library`` runs on in the current session (no-op outside one)."""
    run = _CURRENT.get()
    if run is not None:
        run.used[library] = what


def onnx_providers():
    """onnxruntime execution providers for the current run: CUDA first when chosen and available."""
    if current().cuda_wanted and cuda_support()["onnxruntime"]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_threads(threads=None):
    """``threads`` if given (> 0), else the run's thread count; ``None`` = onnxruntime's default."""
    return int(threads) if threads else (current().threads or None)


def use_torch(torch):
    """Apply the run's thread count to torch (once per session) and record the device torch uses.

    OreMap trains on the CPU: torch's device is always ``cpu`` in this version, and the log says
    so when CUDA was chosen. Returns ``torch.device("cpu")``.
    """
    run = _CURRENT.get()
    if run is not None and run.threads and run._torch_threads is None:
        run._torch_threads = torch.get_num_threads()
        torch.set_num_threads(run.threads)
    extra = " (OreMap trains on the CPU; CUDA serves inference only)" if run is not None and run.cuda_wanted else ""
    note("torch", f"cpu{extra}")
    return torch.device("cpu")


def openmp_limit(n_samples=None, small=20000):
    """Context manager bounding scikit-learn's OpenMP threads for one fit.

    The run's thread setting when given; else one core fewer than the machine has (at least one),
    which leaves a core to QGIS: libgomp's spinning threads slow a fit down by an order of magnitude
    when every core is busy (measured: a gradient-boosting fit 16x slower with 2 threads on a loaded
    2-core machine than with 1). Fits of fewer than ``small`` samples use one thread: starting threads
    costs more than it gains there.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - shipped with scikit-learn
        return contextlib.nullcontext()
    threads = current().threads or max(1, (os.cpu_count() or 1) - 1)
    if n_samples is not None and n_samples < small:
        threads = 1
    return threadpool_limits(limits=int(threads), user_api="openmp")


def gemm(a, b):
    """``a @ b`` of two float matrices through the Fortran BLAS interface (scipy.linalg.blas ``sgemm``/``dgemm``).

    Inside QGIS (``qgis_process``, the desktop) numpy's ``@`` does not reach the BLAS numpy was built with: the QGIS
    executable loads GSL's reference CBLAS first, and its ``cblas_sgemm`` takes the place of OpenBLAS's for every
    module loaded after it. Measured: a 2000 x 400 by 400 x 200 float32 product 20 times slower, the bundled CNN's
    classification at half its speed, and last bits that differ from a Python process (batch outputs disagreed
    with ``qgis_process`` runs by 4e-6). GSL exports no Fortran ``sgemm_``, so this call reaches OpenBLAS in every
    process, and gives the bits of numpy's ``@`` in a plain Python process (inputs whose rows or columns are
    contiguous; a step between columns may change the last bits). Other shapes and types use ``@``.
    """
    a, b = np.asarray(a), np.asarray(b)
    dtype = np.result_type(a, b)
    if a.ndim != 2 or b.ndim != 2 or dtype not in (np.float32, np.float64) or 0 in a.shape + b.shape:
        return a @ b
    from scipy.linalg import blas

    routine = blas.sgemm if dtype == np.float32 else blas.dgemm
    # C-ordered a @ b is the transpose of the Fortran-ordered b.T @ a.T: no copies in, a C-ordered result out
    return routine(1.0, np.asarray(b, dtype).T, np.asarray(a, dtype).T).T


def matmul_one_thread(a, b):
    """``a @ b`` on one BLAS thread, so that the result does not depend on the thread count.

    OpenBLAS splits a product between its threads in ways that change the order of the sums, and so the last
    bits of float32 results (measured: 42 of 100 pixels of a resampled AVIRIS-NG tile changed by one unit in the
    last place between 2 threads and 1). Dask workers run with one BLAS thread; a scene split between them must
    give the same bytes as one process, so per-pixel products run on one thread everywhere.
    """
    try:
        import scipy.linalg.blas  # noqa: F401 - loaded before the limit, which covers only the libraries loaded
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - shipped with scikit-learn
        return gemm(a, b)
    # BLAS's thread count is the process's: runs in two threads (QGIS's background tasks) each saved it on entry
    # and put back what they saw, so the last to leave restored the other's 1 for the rest of the session. The
    # first to enter limits it, the last to leave restores it.
    with _BLAS_LIMIT["lock"]:
        if _BLAS_LIMIT["users"] == 0:
            _BLAS_LIMIT["limit"] = threadpool_limits(limits=1, user_api="blas")
        _BLAS_LIMIT["users"] += 1
    try:
        return gemm(a, b)
    finally:
        with _BLAS_LIMIT["lock"]:
            _BLAS_LIMIT["users"] -= 1
            if _BLAS_LIMIT["users"] == 0:
                _BLAS_LIMIT.pop("limit").restore_original_limits()


_BLAS_LIMIT = {"lock": threading.Lock(), "users": 0}


def require_torch(what="train neural networks"):
    """``(torch, torch.nn)`` with the run's threads applied and its device noted; an
    :class:`~core.engine.errors.OreMapError` saying how to install torch when it is missing."""
    try:
        import torch
        from torch import nn
    except (ImportError, OSError) as exc:  # absent, or a DLL that will not load (Windows: [WinError 126] c10.dll)
        from .dependencies import import_failure
        from .errors import OreMapError

        message, fix = import_failure("torch", exc, what, install="Install the CPU build into the Python that QGIS "
                                      "uses: " + install_command(["torch"])[0])
        raise OreMapError(message, parameter="training", fix=fix) from None
    use_torch(torch)
    return torch, nn


def torch_classes(what):
    """Decorator for a module's lazily built torch classes: ``build(torch, nn)`` returns a dict of them.

    The decorated function takes no argument; its first call imports torch (:func:`require_torch`,
    ``what`` says what torch is needed for) and builds the classes, later calls return the same dict
    (with ``torch`` and ``nn`` in it) after applying the run's threads and noting the device.
    """
    def wrap(build):
        cache = {}

        @functools.wraps(build)
        def classes():
            if cache:
                use_torch(cache["torch"])
                return cache
            torch, nn = require_torch(what)
            cache.update(build(torch, nn), torch=torch, nn=nn)
            return cache

        return classes

    return wrap


def torch_predict(module, X, batch_size, empty_shape=None):
    """``module`` (put in eval mode) on float32 array ``X`` in batches of ``batch_size`` rows, without
    gradients; the outputs concatenated as a float32 array (``empty_shape`` zeros when ``X`` is empty)."""
    import torch

    X = np.ascontiguousarray(X, dtype=np.float32)
    module.eval()
    with torch.no_grad():
        parts = [module(torch.from_numpy(X[i:i + batch_size])).numpy() for i in range(0, X.shape[0], batch_size)]
    if not parts:
        return np.zeros(empty_shape if empty_shape is not None else (0,), np.float32)
    return np.concatenate(parts).astype(np.float32)


def onnx_bytes(module, example_shape, input_name, output_names, axes=None, opset=17):
    """ONNX bytes of a torch module (put in eval mode) for float32 input of ``example_shape``.

    ``axes`` (default ``{0: "n"}``, the batch) are dynamic on the input and every output. Uses the
    TorchScript-based exporter (``dynamo=False``): the default exporter of recent torch needs the
    ``onnxscript`` package. Export warnings are silenced.
    """
    import io
    import warnings

    torch, _ = require_torch()
    axes = dict(axes or {0: "n"})
    names = [output_names] if isinstance(output_names, str) else list(output_names)
    module.eval()
    buffer = io.BytesIO()
    with _EXPORT_LOCK, warnings.catch_warnings():   # the exporter's state is process-wide: one export at a time
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.zeros(*[int(v) for v in example_shape], dtype=torch.float32),), buffer,
            input_names=[input_name], output_names=names,
            dynamic_axes={name: axes for name in [input_name] + names},
            opset_version=int(opset), do_constant_folding=True, dynamo=False)
    return buffer.getvalue()
