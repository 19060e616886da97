"""Dask on interpreters: dask.compute(scheduler=pool), and distributed workers whose tasks run in
interpreters (subinterpreters.dask) on a LocalCluster on the loopback interface."""

from __future__ import annotations

import sys

import pytest

if sys.version_info < (3, 12):
    # CPython 3.11's _decimal (which Dask imports) keeps module state shared by every
    # interpreter; once an interpreter that imported it is destroyed, the next one to use it
    # reads freed memory (a segfault inside CPython's dec_new). CPython limit, not ours.
    pytest.skip(
        "Dask in interpreters needs CPython 3.12+: 3.11's _decimal is not interpreter-safe",
        allow_module_level=True,
    )

if sys.version_info[:3] in ((3, 12, 1), (3, 13, 0)):
    # Dask's task objects import Dask inside the worker interpreters, and these releases corrupt
    # their heap there with CPython's own module alone: on 3.12.1 `import hashlib` in an
    # interpreter, on 3.13.0 `importlib.metadata.version()` in two interpreters, each followed
    # by destroying them, aborts (free(): invalid pointer) or segfaults. The tests would fail
    # at random on CPython's fault, not ours.
    pytest.skip(
        "Dask inside interpreters aborts CPython 3.12.1 and 3.13.0 (hashlib, importlib.metadata)",
        allow_module_level=True,
    )

dask = pytest.importorskip(
    "dask",
    reason="dask is not installed for this CPython (scripts/dev.sh installs it where it can)",
)

from dask_tasks import TaskError, add, fail, inc, rendezvous, where  # noqa: E402
from subinterpreters import interpreters  # noqa: E402
from subinterpreters.futures import InterpreterPoolExecutor  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def test_dask_compute_with_pool_as_scheduler():
    delayed = dask.delayed
    with InterpreterPoolExecutor(2) as pool:
        total = delayed(sum)([delayed(inc)(i) for i in range(20)])
        (result,) = dask.compute(total, scheduler=pool)
        ids = dask.compute(*[delayed(where)() for _ in range(4)], scheduler=pool)
    assert result == sum(range(1, 21))
    assert all(i != 0 for i in ids)


@pytest.fixture
def distributed():
    return pytest.importorskip(
        "distributed", reason="distributed is not installed for this CPython"
    )


def local_cluster(distributed, **kwargs):
    return distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
        **kwargs,
    )


def test_distributed_worker_runs_tasks_in_interpreters(distributed):
    from subinterpreters.dask import InterpreterTaskExecutor

    executor = InterpreterTaskExecutor(2)
    with (
        local_cluster(distributed, executor=executor) as cluster,
        distributed.Client(cluster, timeout=30) as client,
    ):
        one = client.submit(add, 1, 2)
        two = client.submit(inc, one)  # a dependency, passed by the worker
        assert two.result(timeout=30) == 4
        ids = client.gather(client.map(lambda _: where(), range(4), pure=False))
        assert all(i != 0 for i in ids), ids
        assert set(executor.task_interpreters.values()) >= set(ids)
        assert executor.task_interpreters[one.key] != 0

        with pytest.raises(TaskError, match="boom"):
            client.submit(fail, "boom").result(timeout=30)

        # Both worker threads' tasks run at once, each in its own interpreter.
        qa, qb = interpreters.create_queue(), interpreters.create_queue()
        a = client.submit(rendezvous, qa, qb, pure=False)
        b = client.submit(rendezvous, qb, qa, pure=False)
        (ida, seen_by_a), (idb, seen_by_b) = client.gather([a, b])
    assert ida != 0 and idb != 0 and ida != idb
    assert (seen_by_a, seen_by_b) == (idb, ida)
    assert executor.pool._shutdown  # the worker shut its executor down


def test_distributed_worker_plugin(distributed):
    from subinterpreters.dask import InterpreterWorkerPlugin

    with (
        local_cluster(distributed) as cluster,
        distributed.Client(cluster, timeout=30) as client,
    ):
        client.register_plugin(InterpreterWorkerPlugin(executor="interpreters"))
        with dask.annotate(executor="interpreters"):
            inside = client.submit(where, pure=False)
        outside = client.submit(where, pure=False)
        assert inside.result(timeout=30) != 0
        assert outside.result(timeout=30) == 0  # the worker's own threads, as before
