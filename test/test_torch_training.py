"""The one torch training loop (core.engine.torch_training) that every OreMap network trains with."""

import numpy as np
import pytest
import torch

from oremap.core.engine import torch_training
from oremap.core.engine.errors import Cancelled
from oremap.core.engine.feedback import Feedback


class Recorder(Feedback):
    def __init__(self, cancel_after=None):
        self.percent, self.lines, self.checks, self.cancel_after = [], [], 0, cancel_after

    def progress(self, percent):
        self.percent.append(percent)

    def info(self, message):
        self.lines.append(message)

    def is_canceled(self):
        self.checks += 1
        return self.cancel_after is not None and self.checks > self.cancel_after


def linear_fit(seed=0):
    """Least squares y = 2x + 1 by SGD on 40 points: a model whose state we can compare."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, 40, dtype=np.float32)[:, None]
    X, y = torch.from_numpy(x), torch.from_numpy(2 * x + 1)
    with torch_training.seeded(torch, seed):
        net = torch.nn.Linear(1, 1)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(batch):
        optimiser.zero_grad()
        loss = ((net(X[batch]) - y[batch]) ** 2).mean()
        loss.backward()
        optimiser.step()
        return loss

    return net, step, rng


def test_early_stopping_keeps_the_best_epoch_and_its_weights():
    net, step, rng = linear_fit()
    monitored = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 0.1]  # best at epoch 3 (index 2), then 3 epochs without improvement
    states = []

    def end_epoch(epoch, train_loss):
        states.append({k: v.clone() for k, v in net.state_dict().items()})
        return monitored[epoch]

    feedback = Recorder()
    out = torch_training.train_epochs(
        40, 8, len(monitored), rng, step, feedback, end_epoch=end_epoch, model=net, patience=3,
        progress=(10.0, 80.0), early_stop_message=lambda e, b: f"stop {e + 1} keep {b + 1}")
    assert (out.epochs_run, out.best_epoch, out.stopped_early) == (6, 2, True)
    assert feedback.lines == ["stop 6 keep 3"]
    assert feedback.percent == pytest.approx([10 + 80 * k / 7 for k in range(1, 7)])
    for key, value in net.state_dict().items():  # the weights of epoch 3 are back
        assert torch.equal(value, states[2][key])
    assert not torch.equal(net.weight, states[-1]["weight"])


def test_min_epochs_keeps_no_earlier_epoch_and_counts_patience_from_it():
    net, step, rng = linear_fit()
    # lowest at epoch 2; from epoch 4 on the best is epoch 5 (index 4), then 3 epochs without improvement
    monitored = [5.0, 0.5, 3.0, 2.0, 1.0, 1.5, 1.2, 1.1, 0.2]
    states = []

    def end_epoch(epoch, train_loss):
        states.append({k: v.clone() for k, v in net.state_dict().items()})
        return monitored[epoch]

    out = torch_training.train_epochs(40, 8, len(monitored), rng, step, None, end_epoch=end_epoch, model=net,
                                      patience=3, min_epochs=4)
    assert (out.epochs_run, out.best_epoch, out.stopped_early) == (8, 4, True)
    for key, value in net.state_dict().items():
        assert torch.equal(value, states[4][key])
    # without it, the loss of epoch 2 ends training at epoch 5
    net, step, rng = linear_fit()
    out = torch_training.train_epochs(40, 8, len(monitored), rng, step, None, end_epoch=lambda e, t: monitored[e],
                                      model=net, patience=3)
    assert (out.epochs_run, out.best_epoch) == (5, 1)
    # a minimum beyond the epochs run keeps the last epoch
    net, step, rng = linear_fit()
    out = torch_training.train_epochs(40, 8, 3, rng, step, None, end_epoch=lambda e, t: monitored[e], model=net,
                                      patience=3, min_epochs=10)
    assert (out.epochs_run, out.best_epoch) == (3, 2)


def test_without_a_monitored_loss_the_last_epoch_is_kept_and_the_fit_converges():
    net, step, rng = linear_fit()
    out = torch_training.train_epochs(40, 8, 60, rng, step, None)
    assert (out.epochs_run, out.best_epoch, out.best_state) == (60, 59, None)
    assert float(net.weight.detach()) == pytest.approx(2.0, abs=1e-3)
    assert float(net.bias.detach()) == pytest.approx(1.0, abs=1e-3)
    assert out.train_loss[-1] < 1e-6 < out.train_loss[0]


def test_batches_shuffled_by_the_generator_and_a_single_sample_skipped():
    sizes, seen = [], []

    def step(batch):
        sizes.append(len(batch))
        seen.extend(batch.tolist())
        return torch.tensor(1.0)

    torch_training.train_epochs(9, 4, 2, np.random.default_rng(5), step)
    assert sizes == [4, 4, 4, 4]  # the ninth sample of each epoch is a batch of one: skipped
    expected = np.random.default_rng(5)
    assert seen == expected.permutation(9)[:8].tolist() + expected.permutation(9)[:8].tolist()


def test_cancel_stops_between_batches():
    net, step, rng = linear_fit()
    steps = []

    def counted(batch):
        steps.append(len(batch))
        return step(batch)

    # checks: before epoch 1, before its batch 1, before its batch 2 (cancelled)
    feedback = Recorder(cancel_after=2)
    with pytest.raises(Cancelled):
        torch_training.train_epochs(40, 8, 10, rng, counted, feedback)
    assert steps == [8] and feedback.percent == []


def test_progress_within_an_epoch():
    # 100 samples in batches of 2: 50 batches an epoch, a report before batches 21 and 41 and at each epoch's end
    feedback = Recorder()
    torch_training.train_epochs(100, 2, 2, np.random.default_rng(0), lambda batch: torch.tensor(0.5), feedback,
                                progress=(10.0, 80.0))
    assert torch_training.PROGRESS_BATCHES == 20
    assert feedback.percent == pytest.approx([26.0, 42.0, 50.0, 66.0, 82.0, 90.0])


def test_seeded_gives_the_same_weights_and_leaves_the_callers_generator_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with torch_training.seeded(torch, 7, deterministic=True, threads=1) as device:
        a = torch.nn.Linear(4, 2).weight.detach().clone()
        assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random state did not move
    assert not torch.are_deterministic_algorithms_enabled()
    with torch_training.seeded(torch, 7):
        b = torch.nn.Linear(4, 2).weight.detach().clone()
    assert torch.equal(a, b) and str(device) == "cpu"


def test_a_training_waiting_for_another_says_so_and_can_be_cancelled():
    """Trainings run one at a time (TORCH_STATE). A second training started in QGIS waited without a word until the
    first had finished, and its cancel button did nothing meanwhile. Now the wait is said once and cancel ends it;
    a training that finds the lock free waits for nothing and says nothing."""
    import threading
    import time

    held, release = threading.Event(), threading.Event()

    def first():
        with torch_training.torch_state():
            held.set()
            release.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert held.wait(10)
        waiting = Recorder(cancel_after=3)
        start = time.monotonic()
        with pytest.raises(Cancelled):
            with torch_training.seeded(torch, 0, feedback=waiting):
                pytest.fail("entered while the first training held torch's state")
        assert time.monotonic() - start < 5
        assert len(waiting.lines) == 1 and waiting.lines[0].startswith(
            "Waiting for another OreMap training in this QGIS to finish")
        assert waiting.checks == 4
    finally:
        release.set()
        thread.join(30)
    free = Recorder(cancel_after=0)
    with torch_training.session(torch, seed=1, feedback=free):
        assert torch_training.TORCH_STATE.acquire(blocking=False)   # re-entrant for the thread that holds it
        torch_training.TORCH_STATE.release()
    assert free.lines == [] and free.checks == 0
