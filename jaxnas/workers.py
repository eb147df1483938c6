"""A small generic process pool on the standard library (DESIGN.md layout).

:class:`WorkerPool` is a :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn``
start method whose processes each build their state once (``initializer(*initargs)``), then run
``fn(state, item)`` for the items they are handed, one at a time, largest first; the calling
process can work through the same queue with its own state. It knows nothing of what the
state is.

Robustness (issue 14):

* A worker runs the parent's interpreter and imports the parent's ``jaxnas``, whatever the
  current directory: the folder holding this package is put first on the worker's
  ``sys.path`` (a folder with another ``./jaxnas`` cannot shadow it).
* A worker whose initializer fails, or that dies, is a :class:`RuntimeError` naming the pool
  and the cause, raised in the parent -- never a ``BrokenPipeError``.
* Workers ignore SIGINT: Ctrl-C reaches the parent, which stops the workers and re-raises.
* Workers write their stdout (Python and C level) to stderr, so that they never mix into the
  parent's output.

As with every ``spawn`` pool, the main script is imported again in the workers under the name
``__mp_main__`` (a script that starts a pool at import time needs the usual
``if __name__ == "__main__":`` guard), unless the pool is made with ``import_main=False``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import types
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Sequence

#: the folder that holds the ``jaxnas`` package this process runs
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])

_state: Any = None
_init_error: str | None = None


def _bootstrap(initializer: Callable, initargs: tuple, stdout_to_stderr: bool) -> None:
    """Worker start: ignore SIGINT, route stdout to stderr, build the state once. A failure
    is kept and reported by every task (the parent raises it with its message)."""
    global _state, _init_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if stdout_to_stderr:
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), 1)
        sys.stdout = sys.stderr
    try:
        _state = initializer(*initargs)
    except BaseException as e:  # reported through the tasks
        _init_error = f"initializer {getattr(initializer, '__name__', initializer)!s} raised " \
                      f"{type(e).__name__}: {e}"


def _ping() -> str | None:
    return _init_error


def _task(fn: Callable, item) -> tuple[str, Any]:
    if _init_error is not None:
        return "error", _init_error
    try:
        return "ok", fn(_state, item)
    except Exception as e:
        return "error", f"{type(e).__name__}: {e}"


class WorkerPool:
    """``processes`` worker processes, each with the state ``initializer(*initargs)``.

    Args:
        processes: number of worker processes (>= 1).
        initializer, initargs: picklable (module-level) callable and arguments that build a
            worker's state; run once per process.
        name: what the pool is for, in error messages (``'<name> worker process failed: ...'``).
        stdout_to_stderr: send the workers' stdout to stderr.
        import_main: import the main script in the workers (as ``__mp_main__``, what
            ``spawn`` does), which ``initializer`` and the task functions need when they are
            defined there. ``False``: they must live in importable modules, and a main
            script needs no ``if __name__ == "__main__":`` guard and is not run again.

    The processes start at construction and build their state in the background.
    ``close()`` (or ``with``) stops them; so does garbage collection and interpreter exit.
    """

    def __init__(self, processes: int, initializer: Callable, initargs: Sequence = (),
                 name: str = "", stdout_to_stderr: bool = True, import_main: bool = True):
        if int(processes) < 1:
            raise ValueError(f"a worker pool needs >= 1 processes, got {processes!r}")
        self.processes = int(processes)
        self.name = name
        self._ex = ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_bootstrap, initargs=(initializer, tuple(initargs), stdout_to_stderr))
        self._ready = None
        # processes are spawned in submit() (on demand, one per submit while none is idle),
        # where they take a copy of sys.path and of the main module's name: one ping each
        saved, main = list(sys.path), sys.modules.get("__main__")
        sys.path.insert(0, _PACKAGE_ROOT)
        if not import_main and main is not None:
            sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            self._ready = [self._ex.submit(_ping) for _ in range(self.processes)]
        finally:
            sys.path[:] = saved
            if main is not None:
                sys.modules["__main__"] = main

    def _fail(self, cause: str):
        self.terminate()
        what = f"{self.name} worker process" if self.name else "worker process"
        return RuntimeError(f"{what} failed: {cause}")

    def _result(self, future):
        try:
            return future.result()
        except BrokenProcessPool as e:
            raise self._fail(f"a worker process died ({e})") from None
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise self._fail(f"{type(e).__name__}: {e}") from None

    def wait_ready(self) -> None:
        """Wait until every worker has built its state; raise if one could not."""
        if self._ex is None:
            raise RuntimeError("the worker pool is closed")
        for f in self._ready or ():
            err = self._result(f)
            if err is not None:
                raise self._fail(err)
        self._ready = None

    def map(self, fn: Callable, items: Sequence, local: Callable | None = None) -> list:
        """``[fn(state, item) for item in items]``, run by the workers (and by ``local(item)``
        in this process, if given), handing out one item at a time in the order given.

        ``fn`` must be picklable (a module-level function). Results come back in ``items``
        order. Raises:
            RuntimeError: a worker failed (its message); the pool is then stopped.
        """
        self.wait_ready()
        queue = list(range(len(items)))
        lock = threading.Lock()
        results: dict[int, Any] = {}
        errors: list[BaseException] = []

        def take():
            with lock:
                return queue.pop(0) if queue and not errors else None

        def remote():
            try:
                while (i := take()) is not None:
                    ex = self._ex
                    if ex is None:
                        raise self._fail("the pool was stopped")
                    status, val = self._result(ex.submit(_task, fn, items[i]))
                    if status != "ok":
                        raise self._fail(val)
                    results[i] = val
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=remote, daemon=True) for _ in range(self.processes)]
        for t in threads:
            t.start()
        try:
            while local is not None and (i := take()) is not None:
                results[i] = local(items[i])
            for t in threads:
                t.join()
        except BaseException:  # Ctrl-C (workers ignore it) or a local error: stop the workers
            with lock:
                queue.clear()
            self.terminate()
            for t in threads:
                t.join()
            raise
        if errors:
            raise errors[0]
        return [results[i] for i in range(len(items))]

    def terminate(self) -> None:
        """Stop the workers now (running tasks are abandoned)."""
        ex, self._ex = self._ex, None
        if ex is None:
            return
        procs = list(getattr(ex, "_processes", {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)

    def close(self) -> None:
        """Stop the workers after their current task."""
        ex, self._ex = self._ex, None
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)

    @property
    def closed(self) -> bool:
        return self._ex is None

    @property
    def workers(self) -> list[int]:
        """Process ids of the running workers (for monitoring)."""
        return [] if self._ex is None else list(getattr(self._ex, "_processes", {}).keys())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None and issubclass(exc[0], KeyboardInterrupt):
            self.terminate()
        else:
            self.close()

    def __del__(self):
        try:
            self.terminate()
        except Exception:
            pass
