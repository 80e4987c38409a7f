"""corral.Executor: concurrent.futures on corral's work-stealing CPU pool."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest

import corral


def test_submit_map_and_exceptions():
    with corral.Executor(max_workers=2) as ex:
        assert ex.max_workers == 2
        assert ex.submit(pow, 2, 10).result(timeout=30) == 1024
        assert list(ex.map(lambda x: x * x, range(20))) == [x * x for x in range(20)]
        f = ex.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            f.result(timeout=30)
        names = set(ex.map(lambda _: threading.current_thread().ident, range(8)))
        assert threading.get_ident() not in names, "jobs run on the pool's threads"


def test_gil_releasing_work_runs_in_parallel():
    data = b"x" * (8 << 20)
    with corral.Executor(max_workers=2) as ex:
        digests = list(ex.map(lambda _: hashlib.sha256(data).hexdigest(), range(4)))
    assert len(set(digests)) == 1


def test_shutdown_refuses_new_work_and_can_cancel_pending():
    started, release = threading.Event(), threading.Event()

    def hold():
        started.set()
        return release.wait(30)

    ex = corral.Executor(max_workers=1)
    first = ex.submit(hold)
    assert started.wait(30), "the first job is running (so it is not cancellable)"
    queued = [ex.submit(lambda: "late") for _ in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError):
        ex.submit(lambda: None)
    release.set()
    assert first.result(timeout=30) is True
    assert all(f.cancelled() for f in queued)


@pytest.mark.asyncio
async def test_run_in_executor():
    loop = asyncio.get_running_loop()
    with corral.Executor(max_workers=2) as ex:
        got = await asyncio.gather(*(loop.run_in_executor(ex, sum, range(n)) for n in range(10)))
    assert got == [sum(range(n)) for n in range(10)]
