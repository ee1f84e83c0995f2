"""The cross-session batching executor: order per session, fairness, batch size and wait bounds, bounded queues,
failure isolation and withdrawal on interrupt."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import Counter

import pytest

from realtime.batching import BatchingExecutor

# On looptime's fast-forwarded loop a model "runs" for exactly its run_s and a wait lasts exactly its wait_s, however
# loaded the machine is: the batching decisions these tests check depend on time, never on the CPU's speed.
pytestmark = pytest.mark.looptime


class Model:
    """Stands in for a lip-sync model: records each batch (with the queue state when it started) and turns
    ``(owner, n)`` into ``(owner, n, "frame")`` after ``run_s``. Items named "poison" make the whole batch fail."""

    def __init__(self, run_s: float = 0.005) -> None:
        self.run_s = run_s
        self.batches: list[list[tuple[str, int]]] = []
        self.started_at: list[float] = []
        self.executor: BatchingExecutor | None = None
        self.queued_when_started: list[dict[str, int]] = []

    async def __call__(self, items: list[tuple[str, int]]) -> list[tuple[str, int, str]]:
        self.started_at.append(asyncio.get_running_loop().time())
        self.batches.append(list(items))
        await asyncio.sleep(self.run_s)
        if any(n == "poison" for _, n in items):
            raise RuntimeError("the model fell over")
        return [(owner, n, "frame") for owner, n in items]


def make(model: Model, *, batch_size: int = 8, wait_ms: float = 5, max_queued: int = 64) -> BatchingExecutor:
    executor = BatchingExecutor(model, batch_size=batch_size, wait_s=wait_ms / 1000, max_queued=max_queued)
    model.executor = executor
    return executor


async def session(executor: BatchingExecutor, owner: str, frames: int, chunk: int) -> list[tuple[str, int, str]]:
    """A render stage: submits its frames ``chunk`` at a time and waits for each chunk, like RenderStage."""
    out = []
    for start in range(0, frames, chunk):
        out += await executor.submit(owner, [(owner, n) for n in range(start, min(frames, start + chunk))])
    return out


async def test_each_session_gets_its_own_frames_back_in_order():
    model = Model()
    executor = make(model)
    results = await asyncio.gather(*(session(executor, f"s{k}", 40 + 7 * k, chunk=3 + k) for k in range(5)))
    for k, frames in enumerate(results):
        assert frames == [(f"s{k}", n, "frame") for n in range(40 + 7 * k)]
    # requests of different sessions really shared forward passes
    assert any(len({owner for owner, _ in batch}) > 1 for batch in model.batches)
    await executor.aclose()


async def test_concurrent_sessions_fill_batches_and_no_batch_exceeds_the_size():
    model = Model()
    executor = make(model, batch_size=8)
    await asyncio.gather(*(session(executor, f"s{k}", 32, chunk=4) for k in range(8)))
    sizes = [len(batch) for batch in model.batches]
    assert max(sizes) == 8
    assert sum(sizes) == 8 * 32
    assert executor.stats.mean_batch > 6  # one session alone would never exceed its chunk of 4
    await executor.aclose()


async def test_round_robin_no_session_starves_behind_a_flood():
    model = Model()
    executor = make(model, batch_size=4, max_queued=400)
    flood = asyncio.create_task(executor.submit("flood", [("flood", n) for n in range(200)]))
    await asyncio.sleep(0.02)  # the flood is being worked through
    asking = asyncio.create_task(executor.submit("small", [("small", n) for n in range(6)]))
    while not executor.queued("small"):
        await asyncio.sleep(0)
    formed_before = len(model.batches)  # a batch is recorded the moment it is formed
    small = await asyncio.wait_for(asking, 1)
    assert small == [("small", n, "frame") for n in range(6)]
    assert not flood.done()  # the small session finished long before the flood
    # every batch formed while both had requests queued was shared between them, within one item of even
    for batch in model.batches:
        counts = Counter(owner for owner, _ in batch)
        if "small" in counts:
            assert abs(counts["small"] - counts["flood"]) <= 1
    # and the small session got into the very first batch formed after its requests were queued
    first_small = next(i for i, b in enumerate(model.batches) if any(o == "small" for o, _ in b))
    assert first_small == formed_before
    await flood
    await executor.aclose()


async def test_the_first_turn_rotates_when_a_batch_cannot_hold_everyone():
    model = Model(run_s=0.001)
    executor = make(model, batch_size=2, wait_ms=0)
    await asyncio.gather(*(executor.submit(owner, [(owner, n) for n in range(30)]) for owner in "ABC"))
    first_six = Counter(owner for batch in model.batches[:6] for owner, _ in batch)
    assert first_six == {"A": 4, "B": 4, "C": 4}
    await executor.aclose()


async def test_eight_sessions_progress_evenly():
    model = Model(run_s=0.002)
    executor = make(model, batch_size=8, wait_ms=20)
    finished: dict[str, float] = {}

    async def timed(owner: str) -> None:
        await session(executor, owner, 48, chunk=8)
        finished[owner] = asyncio.get_running_loop().time()

    await asyncio.gather(*(timed(f"s{k}") for k in range(8)))
    spread = max(finished.values()) - min(finished.values())
    total = max(model.started_at) - min(model.started_at)
    assert spread <= 0.25 * total  # all finish near the same time: the model was shared fairly
    await executor.aclose()


async def test_a_lone_session_is_not_kept_waiting_for_a_full_batch():
    model = Model(run_s=0.0)
    executor = make(model, batch_size=8, wait_ms=200)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await executor.submit("alone", [("alone", 0)]) == [("alone", 0, "frame")]
    assert loop.time() - started < 0.05
    await executor.aclose()


async def test_a_partial_batch_waits_at_most_the_wait_time_for_an_expected_session():
    model = Model(run_s=0.0)
    executor = make(model, batch_size=8, wait_ms=60)
    loop = asyncio.get_running_loop()
    await executor.submit("quiet", [("quiet", 0)])  # "quiet" has spoken recently: worth waiting for
    started = loop.time()
    await executor.submit("talker", [("talker", 0)])
    waited = loop.time() - started
    assert 0.05 <= waited < 0.15
    assert model.batches[-1] == [("talker", 0)]

    # when the expected session does send, the batch leaves as soon as it is there, together
    started = loop.time()
    talker = asyncio.create_task(executor.submit("talker", [("talker", 1)]))
    await asyncio.sleep(0.01)
    await executor.submit("quiet", [("quiet", 1)])
    await talker
    assert loop.time() - started < 0.05
    assert sorted(model.batches[-1]) == [("quiet", 1), ("talker", 1)]
    await executor.aclose()


@pytest.mark.looptime(False)  # the watcher looks after every step of the loop, so the loop is never idle
async def test_queues_are_bounded_and_a_full_queue_makes_the_submitter_wait():
    model = Model(run_s=0.01)
    executor = make(model, batch_size=2, max_queued=3)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, executor.queued("big"))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    results = await executor.submit("big", [("big", n) for n in range(12)])
    watcher.cancel()
    assert results == [("big", n, "frame") for n in range(12)]
    assert peak == 3
    assert executor.queued() == 0
    await executor.aclose()


async def test_a_failing_batch_fails_only_its_own_requests():
    model = Model()
    executor = make(model, batch_size=2, wait_ms=0)
    poisoned = asyncio.create_task(executor.submit("bad", [("bad", "poison")]))
    neighbour = asyncio.create_task(executor.submit("good", [("good", 0)]))
    later = asyncio.create_task(executor.submit("later", [("later", n) for n in range(4)]))
    with pytest.raises(RuntimeError, match="fell over"):
        await poisoned
    outcome = await asyncio.gather(neighbour, return_exceptions=True)
    shared = any({o for o, _ in batch} >= {"bad", "good"} for batch in model.batches)
    # the neighbour failed only if it shared the poisoned forward pass
    assert isinstance(outcome[0], RuntimeError) == shared
    assert await later == [("later", n, "frame") for n in range(4)]
    assert executor.stats.failed_batches == 1
    # the executor goes on serving
    assert await executor.submit("bad", [("bad", 1)]) == [("bad", 1, "frame")]
    await executor.aclose()


async def test_a_cancelled_submission_never_reaches_the_model():
    model = Model(run_s=0.05)
    executor = make(model, batch_size=2, wait_ms=0)
    busy = asyncio.create_task(executor.submit("other", [("other", 0)]))
    await asyncio.sleep(0.01)  # the model is busy with "other"
    interrupted = asyncio.create_task(executor.submit("cut", [("cut", n) for n in range(6)]))
    await asyncio.sleep(0.01)
    interrupted.cancel()
    await asyncio.gather(interrupted, return_exceptions=True)
    await busy
    assert executor.queued("cut") == 0
    await executor.submit("other", [("other", 1)])
    assert all(owner != "cut" for batch in model.batches for owner, _ in batch)
    await executor.aclose()


async def test_forget_drops_a_closed_sessions_requests():
    model = Model(run_s=0.05)
    executor = make(model, batch_size=1, wait_ms=0)
    first = asyncio.create_task(executor.submit("gone", [("gone", n) for n in range(5)]))
    await asyncio.sleep(0.01)
    executor.forget("gone")
    with pytest.raises(asyncio.CancelledError):
        await first
    assert executor.queued() == 0
    assert len(model.batches) == 1  # only the batch already running when the session closed
    await executor.aclose()


class Frame:
    """A request or a result the test can hold a weak reference to."""


async def test_nothing_of_a_served_batch_outlives_its_sessions():
    """Once every request is answered and its session forgotten, the executor keeps no request and no result
    alive while it waits for the next batch (a session's last batch once held eight requests, their avatar and
    frames, for as long as the worker stayed idle)."""

    async def render(items: list[Frame]) -> list[Frame]:
        await asyncio.sleep(0.001)
        return [Frame() for _ in items]

    executor = BatchingExecutor(render, batch_size=8, wait_s=0.005, max_queued=16)
    requests = [Frame() for _ in range(8)]
    results = await asyncio.gather(*(executor.submit(n, [request]) for n, request in enumerate(requests)))
    refs = [weakref.ref(frame) for frame in [*requests, *(result for (result,) in results)]]
    del requests, results
    for n in range(8):
        executor.forget(n)
    deadline = asyncio.get_running_loop().time() + 2
    while any(ref() is not None for ref in refs) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
        gc.collect()
    assert [ref() for ref in refs] == [None] * 16
    await executor.aclose()
