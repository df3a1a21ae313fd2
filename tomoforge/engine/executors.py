"""Executors: where tasks run. A local process pool, a Dask cluster, or in-process (for debugging).

All share one small interface (``submit``, ``wait``, ``shutdown``) so the runner's loop is the same
everywhere. A task's exception is caught in the worker and comes back as a ``TaskFailure`` carrying
the formatted traceback; a worker that dies (killed, out of memory) fails its task with a clear
message instead of hanging the run.

Local workers die with their orchestrator (see ``_guard_worker``): on Linux the kernel kills them
(``PR_SET_PDEATHSIG``) as the orchestrator exits, before it can be seen dead, so no worker of a run
marked failed is left to write into its folder; elsewhere a watch thread in each worker ends it within
``WATCH_INTERVAL_S``. (Dask's local workers end with their parent by themselves; tasks already running
on a remote Dask cluster are not stopped by the client's death.) Workers never open the project database: tasks return their results and the
orchestrator records them (an audit hook in each worker refuses ``project.db``). A task writes its files
under the run's ``tmp/`` folder and moves them into ``out/`` with ``publish``.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, Field

from tomoforge.errors import describe_failure

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


def call_task(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a task in a worker, turning any exception into a picklable TaskFailure."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure must reach the orchestrator
        return TaskFailure(describe_failure(exc), traceback.format_exc())


PASSIVE = "PASSIVE"
WATCH_INTERVAL_S = 0.2  # how often a worker's watch thread checks that its orchestrator still runs
ORPHAN_EXIT_CODE = 75  # a worker ending itself because its orchestrator is gone
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PROJECT_DB = "project.db"  # engine.project.DB_NAME (project.py imports this module, not the reverse)

_orchestrator_pid: int | None = None  # in a local worker: the process that started it


def orchestrator_alive() -> bool:
    """In a local worker: whether the orchestrator that started it still runs (always True elsewhere)."""
    return _orchestrator_pid is None or os.getppid() == _orchestrator_pid


def publish(temporary: str | os.PathLike[str], final: str | os.PathLike[str]) -> Path:
    """Move a finished file into place (one atomic rename); a worker whose orchestrator is gone exits instead.

    Write a task's file under the run's ``tmp/`` folder (same file system as ``out/``) and publish it
    when complete: a worker killed while writing leaves at most a temporary file in ``tmp/`` (removed
    when the run ends), never a partial or stray file in ``out/``. On Linux the kernel already kills a
    worker as its orchestrator exits; the check here covers systems without that signal, where the
    watch thread may take up to ``WATCH_INTERVAL_S`` to notice.

    Parameters
    ----------
    temporary : str or os.PathLike
        The complete file, on the same file system as ``final`` (e.g. in the run's ``tmp/``).
    final : str or os.PathLike
        Where it belongs (e.g. in the run's ``out/``); an existing file there is replaced.

    Returns
    -------
    Path
        ``final``.
    """
    if not orchestrator_alive():
        os._exit(ORPHAN_EXIT_CODE)
    os.replace(temporary, final)
    return Path(final)


def _arm_parent_death_signal() -> bool:
    """Linux: have the kernel SIGKILL this process when the thread that started it ends; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch_orchestrator(pid: int, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != pid:  # re-parented: the orchestrator is gone
            os._exit(ORPHAN_EXIT_CODE)


def _refuse_project_database(event: str, args: tuple[Any, ...]) -> None:
    if event != "sqlite3.connect" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    name = os.fsdecode(args[0])
    if Path(name.split("?", 1)[0]).name == PROJECT_DB:
        raise PermissionError(
            f"{name}: a worker never opens the project database; a task returns its result"
            " and the orchestrator records it"
        )


def _guard_worker(orchestrator_pid: int, pdeathsig: bool = True, interval_s: float = WATCH_INTERVAL_S) -> None:
    """Make this worker die with its orchestrator and keep it out of the project database.

    The parent-death signal (Linux) fires when the *thread* that started the worker ends: ``LocalExecutor``
    starts workers from the main thread or from a thread that lives as long as the pool. The kernel queues
    the SIGKILL as that thread exits; for the main thread that is before the orchestrator turns zombie, so
    by the time anyone can see the run's process gone (and mark the run failed) the worker makes no new
    system call: a rename under way happens whole or not at all, nothing follows it. (From another thread
    the order holds up to the moments between the threads' exits.) Armed only once the worker runs, it
    misses an orchestrator that died in between: the parent is checked once after arming; such a worker
    ran no task. The watch thread is the portable fallback (and a second line on Linux).

    Parameters
    ----------
    orchestrator_pid : int
        The process that started this worker (its parent).
    pdeathsig : bool
        Arm the Linux parent-death signal (tests turn it off to exercise the watch thread alone).
    interval_s : float
        How often the watch thread checks the parent.
    """
    global _orchestrator_pid
    _orchestrator_pid = orchestrator_pid
    if pdeathsig:
        _arm_parent_death_signal()
    if os.getppid() != orchestrator_pid:
        os._exit(ORPHAN_EXIT_CODE)
    threading.Thread(
        target=_watch_orchestrator,
        args=(orchestrator_pid, interval_s),
        daemon=True,
        name="tomoforge-orchestrator-watch",
    ).start()
    sys.addaudithook(_refuse_project_database)


def _init_worker(threads: int, orchestrator_pid: int) -> None:
    _guard_worker(orchestrator_pid)
    _limit_threads(threads)


def _limit_threads(threads: int) -> None:
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", PASSIVE)
    try:  # only matters if torch was already imported in this worker
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    except Exception:  # noqa: BLE001, S110 - the environment variables above still apply
        pass


def threads_for(config: ExecutorConfig) -> int:
    if config.threads_per_worker:
        return config.threads_per_worker
    return max(1, (os.cpu_count() or 1) // config.workers)


class Executor:
    """Interface: submit tasks, wait for some to finish, shut down."""

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def wait(self, handles: Iterable[Any], timeout: float) -> tuple[set[Any], set[Any]]:
        raise NotImplementedError

    def result(self, handle: Any) -> Any:
        """The task's value, or a TaskFailure (also when the worker died)."""
        raise NotImplementedError

    def shutdown(self, cancel: bool = False) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(cancel=exc[0] is not None)


class SerialExecutor(Executor):
    """Runs tasks one at a time in this process, each when the runner waits (debugging, tiny jobs)."""

    def __init__(self) -> None:
        self._queue: list[cf.Future[Any]] = []
        self._calls: dict[cf.Future[Any], tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = {}

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        self._queue.append(future)
        self._calls[future] = (fn, args, kwargs)
        return future

    def wait(self, handles: Iterable[cf.Future[Any]], timeout: float) -> tuple[set[Any], set[Any]]:
        waiting = set(handles)
        ready = {h for h in waiting if h.done()}
        if not ready:
            future = next(f for f in self._queue if f in waiting and not f.done())
            future.set_result(call_task(*self._calls.pop(future)))
            ready = {future}
        return ready, waiting - ready

    def result(self, handle: cf.Future[Any]) -> Any:
        return handle.result()


class _StartedByStarter(SpawnProcess):
    """A spawned process started from the main thread, or else from its context's starter thread."""

    def __init__(self, *args: Any, starter: cf.ThreadPoolExecutor, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._starter = starter

    def start(self) -> None:
        if threading.current_thread() is threading.main_thread():  # it ends only with the process
            super().start()
        else:
            self._starter.submit(super().start).result()

    def __getstate__(self) -> dict[str, Any]:  # sent to the child, without the (unpicklable) starter
        state = dict(self.__dict__)
        state.pop("_starter", None)
        return state


class _OneStarterSpawnContext(SpawnContext):
    """The spawn start method, each process started from a thread that lives as long as the pool.

    ``ProcessPoolExecutor`` starts a worker from whichever thread calls ``submit``; a worker's parent-death
    signal would then fire when that thread ended, while the pool still needs the worker. The main thread
    starts its workers itself (its end is the process's end, and the kernel then queues the workers'
    SIGKILL before the process can be seen dead); any other thread has them started by ``starter``.
    """

    def __init__(self) -> None:
        self.starter = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tomoforge-worker-starter")

    def Process(self, *args: Any, **kwargs: Any) -> SpawnProcess:  # type: ignore[override]
        return _StartedByStarter(*args, starter=self.starter, **kwargs)


class LocalExecutor(Executor):
    """A pool of worker processes on this machine (spawned, so each starts clean), dying with this process."""

    def __init__(self, workers: int = 1, threads_per_worker: int = 1):
        # Idle OpenMP threads sleep instead of spinning: on a machine shared with other work (or with more
        # workers × threads than cores) spinning threads made torch 5-10x slower. Inherited by the workers.
        os.environ.setdefault("OMP_WAIT_POLICY", PASSIVE)
        self.context = _OneStarterSpawnContext()
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=self.context,
            initializer=_init_worker,
            initargs=(threads_per_worker, os.getpid()),
        )

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> cf.Future[Any]:
        return self.pool.submit(call_task, fn, args, kwargs)

    def wait(self, handles: Iterable[cf.Future[Any]], timeout: float) -> tuple[set[Any], set[Any]]:
        done, pending = cf.wait(list(handles), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def result(self, handle: cf.Future[Any]) -> Any:
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as exc:
            return TaskFailure(f"a worker process died (killed or out of memory): {exc}", "")
        except cf.CancelledError:
            return TaskFailure("cancelled", "")

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=cancel)
        self.context.starter.shutdown(wait=True)  # after the workers: its end would kill them


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: a scheduler address (e.g. from dask-jobqueue) or a LocalCluster."""

    def __init__(self, address: str = "", workers: int = 1, threads_per_worker: int = 1):
        from distributed import Client, LocalCluster

        self.cluster: LocalCluster | None = None
        if address:
            self.client = Client(address)
        else:
            self.cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=None,
                env={name: str(threads_per_worker) for name in THREAD_VARIABLES},
            )
            self.client = Client(self.cluster)

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.client.submit(call_task, fn, args, kwargs, pure=False)

    def wait(self, handles: Iterable[Any], timeout: float) -> tuple[set[Any], set[Any]]:
        from distributed import wait

        futures = list(handles)
        try:
            done, pending = wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:  # distributed.utils.TimeoutError is asyncio's, the builtin since Python 3.11
            return set(), set(futures)
        return set(done), set(pending)

    def result(self, handle: Any) -> Any:
        try:
            return handle.result()
        except Exception as exc:  # noqa: BLE001 - a lost worker surfaces here
            return TaskFailure(f"{type(exc).__name__} on the Dask cluster: {exc}", traceback.format_exc())

    def shutdown(self, cancel: bool = False) -> None:
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
