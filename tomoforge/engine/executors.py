"""Executors: where tasks run. A local process pool, a Dask cluster, or in-process (for debugging).

All share one small interface (``submit``, ``wait``, ``shutdown``) so the runner's loop is the same
everywhere. A task's exception is caught in the worker and comes back as a ``TaskFailure`` carrying
the formatted traceback; a worker that dies (killed, out of memory) fails its task with a clear
message instead of hanging the run.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pydantic import BaseModel, Field

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class ExecutorConfig(BaseModel):
    """How a run's tasks are executed (saved with the run)."""

    kind: str = Field("local", pattern="^(local|dask|serial)$", description="local | dask | serial")
    workers: int = Field(1, ge=1, description="worker processes")
    threads_per_worker: int = Field(0, ge=0, description="threads per worker (0: cores / workers)")
    address: str = Field("", description="Dask scheduler address ('' starts a LocalCluster)")


@dataclass
class TaskFailure:
    """What a failed task returns in place of its result."""

    error: str
    traceback: str


def call_task(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """Run a task in a worker, turning any exception into a picklable TaskFailure."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure must reach the orchestrator
        return TaskFailure(f"{type(exc).__name__}: {exc}", traceback.format_exc())


PASSIVE = "PASSIVE"


def _limit_threads(threads: int) -> None:
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", PASSIVE)
    try:  # only matters if torch was already imported in this worker
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    except Exception:  # noqa: BLE001
        pass


def threads_for(config: ExecutorConfig) -> int:
    if config.threads_per_worker:
        return config.threads_per_worker
    return max(1, (os.cpu_count() or 1) // config.workers)


class Executor:
    """Interface: submit tasks, wait for some to finish, shut down."""

    def submit(self, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def wait(self, handles: Iterable[Any], timeout: float) -> tuple[set, set]:
        raise NotImplementedError

    def result(self, handle: Any) -> Any:
        """The task's value, or a TaskFailure (also when the worker died)."""
        raise NotImplementedError

    def shutdown(self, cancel: bool = False) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(cancel=exc[0] is not None)


class SerialExecutor(Executor):
    """Runs tasks one at a time in this process, each when the runner waits (debugging, tiny jobs)."""

    def __init__(self) -> None:
        self._queue: list[cf.Future] = []
        self._calls: dict[cf.Future, tuple] = {}

    def submit(self, fn, args, kwargs):
        future: cf.Future = cf.Future()
        self._queue.append(future)
        self._calls[future] = (fn, args, kwargs)
        return future

    def wait(self, handles, timeout):
        handles = set(handles)
        ready = {h for h in handles if h.done()}
        if not ready:
            future = next(f for f in self._queue if f in handles and not f.done())
            future.set_result(call_task(*self._calls.pop(future)))
            ready = {future}
        return ready, handles - ready

    def result(self, handle):
        return handle.result()


class LocalExecutor(Executor):
    """A pool of worker processes on this machine (spawned, so each starts clean)."""

    def __init__(self, workers: int = 1, threads_per_worker: int = 1):
        # Idle OpenMP threads sleep instead of spinning: on a machine shared with other work (or with more
        # workers × threads than cores) spinning threads made torch 5-10x slower. Inherited by the workers.
        os.environ.setdefault("OMP_WAIT_POLICY", PASSIVE)
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_limit_threads,
            initargs=(threads_per_worker,),
        )

    def submit(self, fn, args, kwargs):
        return self.pool.submit(call_task, fn, args, kwargs)

    def wait(self, handles, timeout):
        done, pending = cf.wait(list(handles), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def result(self, handle):
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as exc:
            return TaskFailure(f"a worker process died (killed or out of memory): {exc}", "")
        except cf.CancelledError:
            return TaskFailure("cancelled", "")

    def shutdown(self, cancel=False):
        if cancel:
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=cancel)


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: a scheduler address (e.g. from dask-jobqueue) or a LocalCluster."""

    def __init__(self, address: str = "", workers: int = 1, threads_per_worker: int = 1):
        from distributed import Client, LocalCluster

        self.cluster = None
        if address:
            self.client = Client(address)
        else:
            self.cluster = LocalCluster(
                n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                dashboard_address=None, env={name: str(threads_per_worker) for name in THREAD_VARIABLES},
            )
            self.client = Client(self.cluster)

    def submit(self, fn, args, kwargs):
        return self.client.submit(call_task, fn, args, kwargs, pure=False)

    def wait(self, handles, timeout):
        from distributed import wait
        from distributed.utils import TimeoutError as DaskTimeout

        handles = list(handles)
        try:
            done, pending = wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except (DaskTimeout, TimeoutError):
            return set(), set(handles)
        return set(done), set(pending)

    def result(self, handle):
        try:
            return handle.result()
        except Exception as exc:  # noqa: BLE001 - a lost worker surfaces here
            return TaskFailure(f"{type(exc).__name__} on the Dask cluster: {exc}", traceback.format_exc())

    def shutdown(self, cancel=False):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(config: ExecutorConfig) -> Executor:
    threads = threads_for(config)
    if config.kind == "serial":
        return SerialExecutor()
    if config.kind == "dask":
        return DaskExecutor(config.address, config.workers, threads)
    return LocalExecutor(config.workers, threads)
