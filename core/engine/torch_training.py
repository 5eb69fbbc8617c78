"""The one torch training loop every OreMap network uses.

:func:`seeded` fixes the random state of one training run (torch's generator forked, so the
caller's stays untouched; optionally deterministic algorithms and a thread count), and
:func:`train_epochs` runs the epochs: shuffled mini-batches from a numpy generator, one
``step(batch)`` per batch, an end-of-epoch hook (evaluation, history, divergence checks), the
best state kept with early stopping after ``patience`` epochs without improvement, progress
and cancel through :class:`~core.engine.feedback.Feedback`. The device is the one
:func:`core.engine.compute.use_torch` chooses (the CPU in this version).

What differs between networks (loss, augmentation, learning-rate schedule, what is monitored,
log lines) comes in as callbacks, so each network keeps its numbers: the generator calls happen
in the same order as in the per-network loops this replaces.
"""

import contextlib
import threading
import copy
from dataclasses import dataclass, field

import numpy as np

from . import compute
from .feedback import ensure


#: torch's random generator and its deterministic-algorithms flag are one for the process: two trainings at once
#: (QGIS runs algorithms in threads) reseeded and drew from each other's generator (a VAE's scores moved by more
#: than their spread from its solo run with the same seed) and restored each other's flag. A training holds this
#: lock while it sets, uses and restores them (:func:`seeded`, :func:`torch_state`): trainings run one at a time.
TORCH_STATE = threading.RLock()


#: Seconds between two looks at the cancel button while a training waits for :data:`TORCH_STATE`.
WAIT_POLL = 0.25


@contextlib.contextmanager
def torch_state(feedback=None):
    """Hold :data:`TORCH_STATE` for the block: torch's process-wide random and algorithm state is this run's.

    While another training holds it, the wait is said once to ``feedback`` and cancel is honoured
    (:class:`core.engine.feedback.Cancelled`): a second training started in QGIS could not be stopped before the
    first had finished."""
    if not TORCH_STATE.acquire(blocking=False):
        feedback = ensure(feedback)
        feedback.info("Waiting for another OreMap training in this QGIS to finish: networks train one at a time "
                      "(torch's random state is one for the process). Cancel stops the wait.")
        while not TORCH_STATE.acquire(timeout=WAIT_POLL):
            feedback.check()
    try:
        yield
    finally:
        TORCH_STATE.release()


@contextlib.contextmanager
def seeded(torch, seed, deterministic=False, threads=None, feedback=None):
    """Run the block with torch seeded by ``seed`` in a forked generator, holding :data:`TORCH_STATE`.

    ``deterministic``: use torch's deterministic algorithms (warnings only) for the block.
    ``threads``: torch's thread count for the block (restored afterwards). Yields the device
    to train on (:func:`core.engine.compute.use_torch`). ``feedback``: see :func:`torch_state`.
    """
    with torch_state(feedback):
        device = compute.use_torch(torch)
        with session(torch, deterministic, threads, seed):
            yield device


@contextlib.contextmanager
def session(torch, deterministic=True, threads=None, seed=None, feedback=None):
    """torch's process-wide state for a block, restored afterwards: a forked generator (seeded by ``seed`` when
    given), the deterministic-algorithms flag and the thread count, with :data:`TORCH_STATE` held (``feedback``:
    see :func:`torch_state`)."""
    with torch_state(feedback), torch.random.fork_rng(devices=[]):
        previous_deterministic = torch.are_deterministic_algorithms_enabled()
        previous_threads = torch.get_num_threads()
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if threads:
            torch.set_num_threads(int(threads))
        try:
            if seed is not None:
                torch.manual_seed(int(seed))
            yield
        finally:
            if deterministic:
                torch.use_deterministic_algorithms(previous_deterministic)
            if threads:
                torch.set_num_threads(previous_threads)


@dataclass
class Outcome:
    """What :func:`train_epochs` did: epochs run, the epoch kept (0-based) and whether it stopped early."""

    epochs_run: int = 0
    best_epoch: int = -1
    best_state: object = None
    stopped_early: bool = False
    train_loss: list = field(default_factory=list)


#: Batches between two progress reports within an epoch (an epoch of a large augmented library takes minutes).
PROGRESS_BATCHES = 20


def train_epochs(n, batch_size, epochs, rng, step, feedback=None, *, end_epoch=None, start_epoch=None,
                 model=None, patience=0, progress=(0.0, 100.0), log=None, early_stop_message=None,
                 min_batch=2, as_tensor=None, min_epochs=1):
    """Train for up to ``epochs`` epochs over ``n`` samples; returns an :class:`Outcome`.

    Each epoch: ``feedback.check()`` (cancel; checked before every batch too), ``start_epoch(epoch)`` (train mode,
    learning-rate schedule), a permutation ``rng.permutation(n)`` cut into batches of ``batch_size``; a batch
    smaller than ``min_batch`` is skipped (batch norm cannot train on one sample), otherwise
    ``step(batch)`` trains on it and returns the loss tensor (or ``None`` when it skipped the batch
    itself). ``as_tensor``: the torch module, to pass the permutation as a tensor instead of numpy.

    After the batches ``end_epoch(epoch, train_loss)`` (``train_loss`` is the sample-weighted mean
    of the batch losses) evaluates, records history, raises on divergence and returns the monitored
    loss, or ``None`` when nothing is monitored. With ``model`` and a monitored loss, the state of
    the epoch with the lowest one is kept (deep copy) and loaded back at the end; with ``patience``
    training stops after that many epochs without improvement (``early_stop_message(epoch,
    best_epoch)`` is logged). ``min_epochs``: the kept epoch is at least this one (capped at ``epochs``), and
    patience counts from it: a loss that is lowest in the first few epochs (a network trained beside a
    regulariser, e.g. outlier exposure, whose held-out loss bottoms out before its confidence has grown) does not
    end training there. Progress runs from ``progress[0]`` to ``progress[0] + progress[1]``
    (``None``: not reported), within an epoch too (every :data:`PROGRESS_BATCHES` batches); ``log(epoch,
    train_loss)`` writes the epoch's line.
    """
    feedback = ensure(feedback)
    epochs = int(epochs)
    out = Outcome()
    best_loss, stale = np.inf, 0
    first = min(max(int(min_epochs), 1), epochs) - 1  # the first epoch (index) that may be kept
    for epoch in range(epochs):
        feedback.check()
        if start_epoch is not None:
            start_epoch(epoch)
        order = rng.permutation(n)
        if as_tensor is not None:
            order = as_tensor.from_numpy(order)
        total, seen = 0.0, 0
        for number, start in enumerate(range(0, n, batch_size)):
            feedback.check()
            if progress is not None and number and number % PROGRESS_BATCHES == 0:
                feedback.progress(progress[0] + progress[1] * (epoch + start / n) / epochs)
            batch = order[start:start + batch_size]
            size = len(batch)
            if size < min_batch:
                continue
            loss = step(batch)
            if loss is None:
                continue
            total += loss.item() * size
            seen += size
        train_loss = total / max(seen, 1)
        out.train_loss.append(train_loss)
        out.epochs_run = epoch + 1
        monitored = end_epoch(epoch, train_loss) if end_epoch is not None else None
        if model is not None and monitored is not None and epoch >= first:
            if monitored < best_loss:
                best_loss, out.best_epoch, stale = monitored, epoch, 0
                out.best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        if progress is not None:
            feedback.progress(progress[0] + progress[1] * (epoch + 1) / epochs)
        if log is not None:
            log(epoch, train_loss)
        if patience and model is not None and monitored is not None and stale >= patience:
            if early_stop_message is not None:
                feedback.info(early_stop_message(epoch, out.best_epoch))
            out.stopped_early = True
            break
    if model is not None and out.best_state is not None:
        model.load_state_dict(out.best_state)
    else:
        out.best_epoch = out.epochs_run - 1
    return out
