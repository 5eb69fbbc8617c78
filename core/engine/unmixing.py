"""Linear spectral unmixing: how much of each library endmember is in a pixel.

A pixel spectrum ``x`` (``n_bands``) is modelled as a mixture ``E a`` of the
endmember spectra in the columns of ``E`` (``n_bands x n_endmembers``). The
abundances ``a`` are found by constrained least squares:

* **FCLS** (fully constrained least squares): ``a >= 0`` and ``sum(a) == 1``.
* **NNLS** (non-negative least squares): ``a >= 0`` only.

Both are solved *exactly* (to rounding) by :func:`fcls`, a Lawson-Hanson
primal active-set method that runs on all pixels at once.

How it works
------------
``E`` is factored once as ``E = Q R`` (thin QR: ``Q`` has orthonormal columns,
``R`` is ``p x p`` for ``p`` endmembers and at least ``p`` bands), and every
pixel is projected with one BLAS call, ``Y = X Q`` (``n x p``). Since
``||E a - x||^2 = ||R a - y||^2 + ||x - Q y||^2`` and the last term does not
depend on ``a``, the whole problem shrinks to ``p`` numbers per pixel and every
later step only touches ``n x p`` arrays. This costs the same as the classic
normal equations (``E^T E`` and ``X E``) but keeps the conditioning of ``E``
instead of squaring it, which matters for look-alike spectra (e.g. several
kaolinites).

For a *passive set* ``S`` (the endmembers allowed to be non-zero) the best
abundances are an affine function of ``y``: ``a = y @ P_S + q_S`` (least
squares on the columns ``R_S``; with sum-to-one, on the null space of the
constraint). ``P_S`` and ``q_S`` depend only on ``S``, so they are computed
once per passive set (cached by an integer bitmask) and applied with one
matrix product to every pixel that currently shares that passive set.

:func:`unmix` is the entry point for rasters: it processes pixels in chunks,
reports progress, and returns float32 abundances with the fit RMSE.
:func:`check_endmembers` validates an endmember matrix before a long run.
"""

import numpy as np

from .compute import gemm
from .errors import OreMapError
from .feedback import ensure

__all__ = ["fcls", "unmix", "check_endmembers", "MODES", "CHUNK_PIXELS"]

#: Unmixing modes understood by :func:`unmix`.
MODES = ("fcls", "nn_closed")

#: Pixels processed at once by :func:`unmix`. Working memory is a few
#: ``CHUNK_PIXELS x n_endmembers`` float64 arrays; the pixel spectra themselves
#: are never copied whole (they are converted :data:`CONVERT_ROWS` rows at a time).
CHUNK_PIXELS = 65536

#: Rows of pixel spectra converted to float64 at once (projection, residuals).
CONVERT_ROWS = 4096

# Relative tolerance of the final optimality check. The active-set loop itself
# uses the caller's ``tol``; a pixel is only reported as not converged when its
# KKT conditions are violated by more than this (rounding noise stays many
# orders of magnitude below it).
_KKT_REPORT_TOL = 1e-7

# Singular values below this fraction of the largest are treated as zero when
# the small passive-set matrices are inverted: endmembers that differ by less
# than that (relative) are indistinguishable and share their abundance. The
# default of numpy.linalg.pinv (1e-15) is below the rounding noise of the QR
# factor, which would turn exact duplicates into huge, meaningless weights.
_RCOND = 1e-12


# ---------------------------------------------------------------------------
# Passive-set solves, cached per bitmask
# ---------------------------------------------------------------------------
class _PassiveSetSolver:
    """Least squares restricted to a passive set, for many pixels at once.

    Works on the compressed problem ``min ||R a - y||``. For every passive set
    seen, the map ``y -> a`` is precomputed as ``a = y @ P + q`` with ``P`` of
    shape ``(r, p)`` (zero columns outside the set) and ``q`` of shape
    ``(p,)``. Pixels are grouped by passive set so that each group costs one
    small matrix product.

    Parameters
    ----------
    R : ndarray of shape (r, p)
        Triangular factor of the endmember matrix, ``E = Q R``.
    sum_to_one : bool
        Add the equality constraint ``sum(a_S) == 1``.

    Notes
    -----
    With sum-to-one, ``a_S = 1/k + N z`` where the columns of ``N`` are an
    orthonormal basis of the vectors summing to zero, and ``z`` is the plain
    least-squares solution of ``(R_S N) z = y - R_S 1/k``. The small matrices
    are inverted with :func:`numpy.linalg.pinv`, so a rank-deficient set (e.g.
    the same spectrum twice) gets the minimum-norm answer, an even split
    between indistinguishable endmembers, instead of failing.
    """

    def __init__(self, R, sum_to_one):
        self.R = R
        self.p = R.shape[1]
        self.sum_to_one = bool(sum_to_one)
        self._bits = np.left_shift(1, np.arange(self.p, dtype=np.int64))
        self._cache = {}

    def codes(self, S):
        """Integer bitmask of each row of the boolean passive-set array ``S``."""
        return S.astype(np.int64) @ self._bits

    def operator(self, code):
        """Return ``(P, q)`` such that ``a = y @ P + q`` on passive set ``code``."""
        op = self._cache.get(code)
        if op is None:
            op = self._build(code)
            self._cache[code] = op
        return op

    def _build(self, code):
        R, p = self.R, self.p
        idx = np.flatnonzero((int(code) >> np.arange(p)) & 1)
        P = np.zeros((R.shape[0], p))
        q = np.zeros(p)
        k = idx.size
        if k == 0:
            return P, q
        R_S = R[:, idx]
        if not self.sum_to_one:
            P[:, idx] = np.linalg.pinv(R_S, rcond=_RCOND).T
            return P, q
        centre = np.full(k, 1.0 / k)
        if k == 1:
            q[idx] = 1.0
            return P, q
        # First k-1 columns of Q of the centring matrix: basis of sum(v) == 0.
        N = np.linalg.qr(np.eye(k) - 1.0 / k)[0][:, :k - 1]
        M = N @ np.linalg.pinv(R_S @ N, rcond=_RCOND)  # (k, r): a_S = M y + c
        P[:, idx] = M.T
        q[idx] = centre - M @ (R_S @ centre)
        return P, q

    def solve(self, S, Y):
        """Solve the passive-set problem for every row.

        Parameters
        ----------
        S : ndarray of bool, shape (k, p)
            Passive set of each pixel.
        Y : ndarray of shape (k, r)
            Projected pixels ``X Q``.

        Returns
        -------
        A : ndarray of shape (k, p)
            Solutions, exactly zero outside each passive set.
        """
        codes = self.codes(S)
        A = np.empty((Y.shape[0], self.p))
        if codes.size == 0:
            return A
        first = codes[0]
        if np.all(codes == first):
            P, q = self.operator(int(first))
            np.add(gemm(Y, P), q, out=A)
            return A
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.flatnonzero(np.diff(sorted_codes)) + 1
        bounds = np.concatenate(([0], starts, [codes.size]))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            rows = order[lo:hi]
            P, q = self.operator(int(sorted_codes[lo]))
            A[rows] = gemm(Y[rows], P) + q
        return A


# ---------------------------------------------------------------------------
# Batched Lawson-Hanson on the compressed problem
# ---------------------------------------------------------------------------
def _multipliers(R, A, Y, S, sum_to_one):
    """Lagrange multipliers of the bounds ``a >= 0``, for every pixel.

    With ``g = R^T (R a - y)`` (equal to ``E^T (E a - x)``, the gradient of
    ``0.5 ||E a - x||^2``), the passive equations read ``g_S + nu = 0``;
    ``nu`` is taken as the mean of ``-g_S`` (0 for NNLS or an empty set).
    Returns ``mu = g + nu``: at the optimum ``mu >= 0`` outside ``S`` and
    ``mu == 0`` on ``S``.
    """
    g = gemm(gemm(A, R.T) - Y, R)
    if sum_to_one:
        n_pass = S.sum(axis=1)
        nu = -np.where(S, g, 0.0).sum(axis=1) / np.maximum(n_pass, 1)
        g += nu[:, None]
    return g


def _solve(solver, Y, tol=1e-10):
    """Exact FCLS/NNLS on the compressed problem ``min ||R a - y||``.

    Parameters
    ----------
    solver : _PassiveSetSolver
        Holds ``R`` (``E = Q R``) and the choice FCLS/NNLS; reuse one across
        chunks so that its cached passive-set operators are built only once.
    Y : ndarray of shape (n, r)
        Projected pixels ``X Q``.
    tol : float
        Relative optimality tolerance (see :func:`fcls`).

    Returns
    -------
    A : ndarray of shape (n, p)
        Abundances.
    unconverged : ndarray of bool, shape (n,)
        Pixels whose KKT conditions still fail by more than a loose relative
        tolerance after the iteration cap (expected to be all False).
    """
    R, sum_to_one = solver.R, solver.sum_to_one
    n, p = Y.shape[0], R.shape[1]
    # Per-pixel absolute threshold for the multipliers, relative to the size
    # of the terms in g_i = e_i^T (E a - x): |e_i| (|E a| + |x|).
    col = np.sqrt((R * R).sum(axis=0)).max(initial=0.0)
    scale = col * (col + np.sqrt((Y * Y).sum(axis=1)))
    thresh = tol * scale

    # 1. Everything passive: the unconstrained (or sum-to-one only) solution.
    #    Where it is already non-negative it is the answer.
    A = solver.solve(np.ones((n, p), dtype=bool), Y)
    todo = np.flatnonzero((A < 0).any(axis=1))
    if todo.size:
        A[todo] = _active_set(solver, Y[todo], A[todo], thresh[todo])
    if sum_to_one:
        # Remove the last rounding drift from the equality constraint.
        A /= A.sum(axis=1, keepdims=True)

    # Final KKT check on every pixel (cheap: a few n x p operations).
    S = A > 0
    mu = _multipliers(R, A, Y, S, sum_to_one)
    bad = np.where(S, np.abs(mu), -mu) > (_KKT_REPORT_TOL * scale)[:, None]
    unconverged = bad.any(axis=1) | (A < 0).any(axis=1)
    return A, unconverged


def _active_set(solver, Y, A, thresh):
    """Lawson-Hanson iterations for the pixels whose first solve went negative.

    Parameters
    ----------
    solver : _PassiveSetSolver
    Y : ndarray of shape (k, r)
        Projected pixels.
    A : ndarray of shape (k, p)
        Their all-passive solution (some entries negative).
    thresh : ndarray of shape (k,)
        Absolute multiplier threshold per pixel.

    Returns
    -------
    A : ndarray of shape (k, p)
        Optimal abundances.
    """
    R, sum_to_one = solver.R, solver.sum_to_one
    k, p = A.shape
    S = np.ones((k, p), dtype=bool)

    # 2. Feasible start: drop every coefficient <= 0 and re-solve on the rest
    #    until the solution is positive on its support. Each pass removes at
    #    least one endmember, so this ends in at most p passes; with sum-to-one
    #    a single endmember gives a = 1, for NNLS an empty set gives a = 0.
    rows = np.arange(k)
    while rows.size:
        S_r = S[rows] & (A[rows] > 0)
        A_r = solver.solve(S_r, Y[rows])
        S[rows] = S_r
        A[rows] = A_r
        rows = rows[(S_r & (A_r <= 0)).any(axis=1)]

    # 3. Lawson-Hanson: add the endmember with the most negative multiplier,
    #    re-solve, and step back to the boundary if a coefficient goes <= 0.
    #    All pixels advance in lockstep; finished ones leave the working set.
    rows = np.arange(k)
    for _ in range(3 * p):
        if not rows.size:
            break
        mu = _multipliers(R, A[rows], Y[rows], S[rows], sum_to_one)
        mu[S[rows]] = np.inf
        j = np.argmin(mu, axis=1)
        go = mu[np.arange(rows.size), j] < -thresh[rows]
        rows, j = rows[go], j[go]
        if not rows.size:
            break
        S[rows, j] = True
        rows = _inner_loop(solver, Y, A, S, rows, j)
    return A


def _inner_loop(solver, Y, A, S, rows, added):
    """Re-solve after an addition, stepping back while coefficients go <= 0.

    Updates ``A`` and ``S`` in place for ``rows`` and returns the rows that may
    continue with another addition. A pixel whose newly added endmember does
    not come out positive (possible only through rounding, when the addition
    barely lowers the misfit) has the addition undone and leaves: it is
    optimal to working precision.
    """
    p = A.shape[1]
    keep = np.ones(rows.size, dtype=bool)
    cur = np.arange(rows.size)  # positions in ``rows`` still stepping
    first = True
    for _ in range(p + 1):
        if not cur.size:
            break
        r = rows[cur]
        S_r = S[r]
        Z = solver.solve(S_r, Y[r])
        if first:
            stalled = Z[np.arange(r.size), added] <= 0
            if stalled.any():
                S[r[stalled], added[stalled]] = False
                keep[cur[stalled]] = False
                cur, r, S_r, Z = cur[~stalled], r[~stalled], S_r[~stalled], Z[~stalled]
            first = False
        blocked = S_r & (Z <= 0)
        ok = ~blocked.any(axis=1)
        A[r[ok]] = Z[ok]
        cur, r, S_r, Z, blocked = cur[~ok], r[~ok], S_r[~ok], Z[~ok], blocked[~ok]
        if not cur.size:
            break
        # Step from the feasible A towards Z until the first coefficient hits 0
        # (A > 0 >= Z on the blocked entries, so the ratios are in [0, 1)).
        A_r = A[r]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(blocked, A_r / (A_r - Z), np.inf)
        hit = np.argmin(ratio, axis=1)
        alpha = ratio[np.arange(r.size), hit]
        A_r = A_r + alpha[:, None] * (Z - A_r)
        A_r[np.arange(r.size), hit] = 0.0
        S_r = S_r & (A_r > 0)
        A_r[~S_r] = 0.0
        A[r] = A_r
        S[r] = S_r
    return rows[keep]


def _as_arrays(X, E):
    """Validate shapes and return float64 ``E`` and 2-D ``X`` (dtype kept)."""
    X = np.asarray(X)
    E = np.asarray(E, dtype=np.float64)
    if E.ndim != 2:
        raise OreMapError(
            "The endmember matrix must be 2-D (bands x endmembers), "
            f"got shape {E.shape}.",
            parameter="endmembers",
        )
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != E.shape[0]:
        raise OreMapError(
            f"The pixels have {X.shape[-1]} bands but the endmembers have {E.shape[0]}.",
            parameter="raster",
            fix="Resample the endmember library to the raster's bands first.",
        )
    return X, E


def _project(X, Q, block=CONVERT_ROWS):
    """``X @ Q`` in float64.

    Other dtypes are converted ``block`` rows at a time: small blocks stay in
    cache, which makes the conversion several times faster than converting
    all of ``X`` first, and bounds the extra memory.
    """
    if X.dtype == np.float64:
        return gemm(X, Q)
    Y = np.empty((X.shape[0], Q.shape[1]))
    for lo in range(0, X.shape[0], block):
        Y[lo:lo + block] = gemm(X[lo:lo + block].astype(np.float64), Q)
    return Y


def _rmse(X, A, E, block=CONVERT_ROWS):
    """Root-mean-square over bands of ``X - A E^T``, ``block`` rows at a time.

    The residual is formed explicitly (not from ``R`` and ``Y``) so that a
    near-perfect fit gives a near-zero RMSE rather than cancellation noise.
    """
    out = np.empty(X.shape[0])
    for lo in range(0, X.shape[0], block):
        resid = X[lo:lo + block] - gemm(A[lo:lo + block], E.T)
        out[lo:lo + block] = np.sqrt(np.mean(resid * resid, axis=1))
    return out


def reconstruction_rmse(X, A, E, block=CONVERT_ROWS):
    """``sqrt(mean over bands of (x - E a)^2)`` of given abundances ``A`` (n_pixels, n_endmembers); NaN where a
    row of ``A`` is NaN. For the closed abundances of the ``"nn_closed"`` mode this is how well the proportions
    themselves, at the endmembers' brightness, reproduce the pixels (unlike the NNLS residual :func:`unmix`
    returns, which lets the brightness float)."""
    X, E = _as_arrays(X, E)
    A = np.asarray(A, dtype=np.float64)
    bad = ~np.isfinite(A).all(axis=1)
    out = _rmse(X, np.where(bad[:, None], 0.0, A), E, block=block)
    out[bad] = np.nan
    return out.astype(np.float32)


def scale_sums(X, E, rmse, step=16):
    """Evidence of a brightness-scale mismatch from every ``step``-th pixel of a block, for
    :func:`scale_mismatch_hint`: ``(pixels used, sum of log2 of the non-negative fit's coefficient sum, sum of
    the strict fit's RMSE, sum of the non-negative fit's RMSE)``.

    ``rmse`` is the strict (``"fcls"``) residual of the pixels of ``X``. The coefficients of a non-negative fit
    with free brightness sum to the factor by which a pixel is brighter than a mixture of the endmembers (1 when
    image and endmembers share a scale). Pixels whose non-negative fit is all zero are left out.
    """
    X, E = _as_arrays(X, E)
    rows = X[::max(1, int(step))]
    if rows.shape[0] == 0:
        return np.zeros(4)
    free = fcls(rows, E, sum_to_one=False)
    total = free.sum(axis=1)
    ok = total > 0
    free_rmse = _rmse(rows, free, E)
    strict = np.asarray(rmse, dtype=np.float64)[::max(1, int(step))]
    return np.array([ok.sum(), np.log2(total[ok]).sum(), strict[ok].sum(), free_rmse[ok].sum()])


# A strict fit points at a scale mismatch when the pixels are, on (geometric) average, darker or brighter than
# mixtures of the endmembers by a factor outside MISMATCH_SCALE, and forcing the abundances to sum to 1 costs
# at least MISMATCH_COST times the residual of a fit with free brightness. Measured on the real Jasper Ridge
# window with its own endmembers (test_unmixing.py): factor 1.04 and cost 1.13 as it is; 0.63 and 1.8 at 0.6
# times its brightness; 1.56 and 2.4 at 1.5 times.
MISMATCH_SCALE = (2 / 3, 1.5)
MISMATCH_COST = 1.5


def scale_mismatch_hint(sums, mean_abundance=None):
    """A log hint (str) when a strict (``"fcls"``) fit points at a brightness-scale mismatch between image
    and endmembers, else None.

    ``sums`` are :func:`scale_sums` added up over the scene. Strict unmixing cannot change a pixel's
    brightness: when the pixels are, say, half as bright as any mixture of the endmembers, the residual grows
    far beyond that of a fit with free brightness, and the abundances pile onto the darkest (or brightest)
    endmembers, leaving others near 0. The scale-invariant mode (non-negative, then closed) is unaffected.
    """
    n, log_total, strict, free = (float(v) for v in sums)
    if n <= 0:
        return None
    factor = 2.0 ** (log_total / n)
    cost = strict / free if free > 0 else (np.inf if strict > 0 else 1.0)
    if MISMATCH_SCALE[0] <= factor <= MISMATCH_SCALE[1] or cost < MISMATCH_COST:
        return None
    unused = [name for name, value in (mean_abundance or {}).items() if value < 0.01]
    text = (f"The pixels are about {factor:.2g} times as bright as mixtures of the endmembers, and forcing the "
            f"abundances to sum to 1 leaves a residual {cost:.1f} times that of a fit with free brightness (mean "
            f"RMSE {strict / n:.3g} against {free / n:.3g} on a sample of {n:.0f} pixels): the image and the "
            "endmembers seem to be on different brightness scales (calibration, shade, a reflectance scale factor)")
    if unused:
        text += f"; {', '.join(unused)} {'is' if len(unused) == 1 else 'are'} near 0 almost everywhere"
    return text + (". Try the non-negative-then-closed (scale-invariant) mode, or check the reflectance scale "
                   "factor (SCALE).")


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------
def fcls(X, E, sum_to_one=True, tol=1e-10):
    """Fully constrained (or non-negative) least-squares abundances.

    Solves, for every pixel ``x`` (row of ``X``)::

        minimise ||E a - x||^2  subject to  a >= 0  [and sum(a) == 1]

    exactly (to rounding), with a Lawson-Hanson active-set method vectorised
    over pixels.

    Parameters
    ----------
    X : array_like of shape (n_pixels, n_bands)
        Pixel spectra, NaN-free. Any float dtype; computations are float64.
    E : array_like of shape (n_bands, n_endmembers)
        Endmember spectra in the columns.
    sum_to_one : bool, default=True
        Enforce ``sum(a) == 1`` (FCLS). With False the problem is plain
        non-negative least squares (NNLS).
    tol : float, default=1e-10
        Optimality tolerance, relative to the size of the problem: an
        endmember at zero is added back while its Lagrange multiplier (the
        derivative of ``0.5 ||E a - x||^2`` along it, shifted by the
        sum-to-one multiplier) is below ``-tol * c * (c + ||x||)``, with ``c``
        the largest endmember norm.

    Returns
    -------
    A : ndarray of float64, shape (n_pixels, n_endmembers)
        Abundances; ``A >= 0`` exactly, and with ``sum_to_one`` each row sums
        to 1 to rounding.

    Notes
    -----
    Cost: a thin QR of ``E`` and one BLAS product ``X Q`` over the pixels,
    plus a handful of grouped ``n x p`` products per active-set iteration;
    pixels inside the simplex finish after the first solve. Working with
    ``R`` (not ``E^T E``) keeps the accuracy of a QR solver when endmembers
    look alike. A rank-deficient ``E`` is handled through pseudo-inverses
    (even split between indistinguishable endmembers). The number of
    Lawson-Hanson additions is capped at ``3 * n_endmembers``; a pixel still
    failing the optimality check after that (not seen in practice) keeps its
    best feasible iterate. :func:`fcls` stays silent about it, :func:`unmix`
    reports the count as a feedback warning.

    Examples
    --------
    >>> import numpy as np
    >>> E = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> fcls(np.array([[0.25, 0.75, 1.0]]), E)
    array([[0.25, 0.75]])
    """
    X, E = _as_arrays(X, E)
    Q, R = np.linalg.qr(E)
    A, _ = _solve(_PassiveSetSolver(R, sum_to_one), _project(X, Q), tol=tol)
    return A


def block_bytes(n_bands, n_endmembers):
    """``(bytes per pixel, bytes whatever the block size)`` of unmixing a block with its residuals (measured with
    tracemalloc, bench/bench_rss.py): per pixel the projections, solver state, abundances and residual columns
    (float32 and float64, about six values an endmember); fixed: the :data:`CONVERT_ROWS`-row pieces converted to float64 for the
    projection and the residuals (three float64 values a band and row)."""
    return 48 * (int(n_endmembers) + 2) + 32, CONVERT_ROWS * 24 * int(n_bands)


def unmix(X, E, mode="fcls", feedback=None):
    """Abundance maps and fit error for a block of pixels.

    Parameters
    ----------
    X : array_like of shape (n_pixels, n_bands)
        Pixel spectra. NaN-free: the caller masks nodata pixels beforehand.
    E : array_like of shape (n_bands, n_endmembers)
        Endmember spectra in the columns (see :func:`check_endmembers`).
    mode : {"fcls", "nn_closed"}, default="fcls"
        ``"fcls"``: strict fully constrained unmixing, ``a >= 0`` and
        ``sum(a) == 1``. Use when pixels and endmembers are on the same
        brightness scale.

        ``"nn_closed"``: non-negative least squares, then each row divided by
        its sum. The result does not change when a pixel is scaled by a
        constant (shade, topography, grain size), so it suits data whose
        brightness differs from the library. A pixel whose NNLS fit is all
        zeros has no meaningful proportions: its abundances are NaN (not
        zeros, which could be mistaken for an answer).
    feedback : Feedback, optional
        Progress and cancellation; checked between chunks of
        :data:`CHUNK_PIXELS` pixels.

    Returns
    -------
    A : ndarray of float32, shape (n_pixels, n_endmembers)
        Abundances.
    rmse : ndarray of float32, shape (n_pixels,)
        ``sqrt(mean over bands of (x - E a)^2)`` for the fitted coefficients.
        For ``"nn_closed"`` this is the misfit of the NNLS fit *before*
        closure (the closed proportions are not a fit to ``x`` in
        brightness).

    Raises
    ------
    OreMapError
        Unknown mode or band-count mismatch.
    Cancelled
        The user cancelled between chunks.
    """
    feedback = ensure(feedback)
    if mode not in MODES:
        raise OreMapError(
            f"Unknown unmixing mode {mode!r}.",
            parameter="mode",
            fix=f"Choose one of: {', '.join(MODES)}.",
        )
    X, E = _as_arrays(X, E)
    n, p = X.shape[0], E.shape[1]
    Q, R = np.linalg.qr(E)
    solver = _PassiveSetSolver(R, sum_to_one=(mode == "fcls"))
    A_out = np.empty((n, p), dtype=np.float32)
    rmse_out = np.empty(n, dtype=np.float32)
    n_unconverged = 0
    for lo in range(0, n, CHUNK_PIXELS):
        feedback.check()
        hi = min(lo + CHUNK_PIXELS, n)
        Xc = X[lo:hi]
        A, unconverged = _solve(solver, _project(Xc, Q))
        n_unconverged += int(unconverged.sum())
        rmse_out[lo:hi] = _rmse(Xc, A, E)
        if mode == "nn_closed":
            total = A.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                A = A / total[:, None]
            A[total <= 0] = np.nan
        A_out[lo:hi] = A
        feedback.progress(100.0 * hi / n)
    if n_unconverged:
        feedback.warning(
            f"Unmixing did not fully converge for {n_unconverged} of {n} pixels; "
            "their abundances are close to, but not exactly, the best fit. "
            "This usually means some endmembers are nearly identical spectra."
        )
    return A_out, rmse_out


#: Spectral angle (rad) under which two endmembers count as one shape: 0.01 rad (0.57 degrees) is closer than two
#: measurements of one USGS sample usually lie (splib07 kaolinites: median 0.07 rad apart).
SAME_SHAPE_ANGLE = 0.01


def same_shape_pairs(E, names, tolerance=SAME_SHAPE_ANGLE):
    """``[(name_a, name_b, angle), ...]``: endmembers (columns of ``E``) whose spectral angle is below ``tolerance``.

    Unmixing cannot tell such endmembers apart (the same spectrum from two libraries, two endmember points on one
    pixel, a mineral and its darker copy): the abundance of what they share is split between them arbitrarily,
    by noise and brightness."""
    E = np.asarray(E, dtype=np.float64)
    norms = np.linalg.norm(E, axis=0)
    ok = np.isfinite(norms) & (norms > 0)
    unit = np.where(ok, E / np.where(ok, norms, 1.0), 0.0)
    angles = np.arccos(np.clip(unit.T @ unit, -1.0, 1.0))
    names = [str(n) for n in names]
    return [(names[i], names[j], float(angles[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))
            if ok[i] and ok[j] and angles[i, j] < tolerance]


def check_endmembers(E, names):
    """Check an endmember matrix before unmixing.

    Parameters
    ----------
    E : array_like of shape (n_bands, n_endmembers)
        Endmember spectra in the columns.
    names : sequence of str
        One name per endmember (column of ``E``).

    Returns
    -------
    None

    Raises
    ------
    OreMapError
        With ``parameter="endmembers"`` and a suggested fix when there are
        fewer than 2 endmembers, the names do not match the columns, names are
        repeated, values are missing or infinite, or there are fewer bands
        than endmembers.
    """
    E = np.asarray(E, dtype=np.float64)
    names = [str(name) for name in names]
    if E.ndim != 2:
        raise OreMapError(
            "The endmember spectra must form a table of bands x endmembers; "
            f"got an array of shape {E.shape}.",
            parameter="endmembers",
            fix="Pass one spectrum per endmember, all on the raster's bands.",
        )
    n_bands, p = E.shape
    if p < 2:
        raise OreMapError(
            f"Unmixing needs at least 2 endmembers; {p} given.",
            parameter="endmembers",
            fix="Select two or more library spectra (for a single mineral, use a "
                "band-depth or matched-filter map instead).",
        )
    if len(names) != p:
        raise OreMapError(
            f"There are {p} endmember spectra but {len(names)} names.",
            parameter="endmembers",
            fix="Give exactly one name per endmember spectrum.",
        )
    seen, dupes = set(), []
    for name in names:
        if name in seen and name not in dupes:
            dupes.append(name)
        seen.add(name)
    if dupes:
        listed = ", ".join(repr(d) for d in dupes)
        raise OreMapError(
            f"Endmember names must be unique; repeated: {listed}.",
            parameter="endmembers",
            fix="Remove the duplicate selections or rename them "
                "(each name becomes an output band).",
        )
    finite = np.isfinite(E)
    if not finite.all():
        bad = [f"{names[i]!r} ({int((~finite[:, i]).sum())} bands)"
               for i in range(p) if not finite[:, i].all()]
        raise OreMapError(
            "Some endmember spectra have missing or infinite values: " + ", ".join(bad) + ".",
            parameter="endmembers",
            fix="Drop the bands where the library has no data (e.g. water-absorption bands) "
                "from both the raster and the library, or choose other spectra.",
        )
    if n_bands < p:
        raise OreMapError(
            f"{p} endmembers cannot be separated with only {n_bands} usable bands.",
            parameter="endmembers",
            fix=f"Use at most {n_bands} endmembers, or a raster with more bands.",
        )
    return None
