"""Reading ahead: the AWS calls for the next groups run in a small thread pool while the caller's thread
delivers the current group.

Only I/O runs in the workers (listing groups, fetching pages). The caller takes the results in the order it
submitted them, so flattening, delivery and the SQLite commits stay in one thread, in the order a
sequential pass would use. Memory stays bounded: at most `workers` page streams run at once, each with at
most `depth` pages fetched and not yet taken, plus the page the caller is working on.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
J = TypeVar("J")

_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class PageStream(Generic[T]):
    """The pages one worker fetches, in order. Iterating re-raises the worker's exception at the point
    where it happened, after the pages fetched before it.

    A queue.Queue of `depth` pages between the worker and the consumer. The worker fetches a page only
    once there is room for it (not fetch-then-block, which would hold one more page in memory), so it
    fetches the next page while the consumer works on the current one, and no further ahead."""

    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._cancelled = False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def cancel(self) -> None:
        """Stop the worker before its next fetch; pages already fetched are dropped."""
        with self._queue.not_full:
            self._cancelled = True
            self._queue.not_full.notify_all()

    def produce(self, make_pages: Callable[[], Iterable[T]]) -> None:
        """The worker side: fetch page after page into the queue until the end, an error or cancel().
        The only producer: once there is room, the put cannot block."""
        try:
            pages = iter(make_pages())
            while self._wait_for_room():
                page = next(pages, _END)
                self._queue.put_nowait(page)
                if page is _END:
                    return
        except Exception as exc:  # handed to the consumer, raised there
            self._queue.put_nowait(_Failure(exc))

    def _wait_for_room(self) -> bool:
        """Block until fewer than `depth` pages wait for the consumer; False once cancelled."""
        with self._queue.not_full:  # the condition Queue.get() notifies when it frees a place
            while not self._cancelled and len(self._queue.queue) >= self._queue.maxsize:
                self._queue.not_full.wait()
            return not self._cancelled


class Prefetcher:
    """A bounded pool of `workers` threads; use as a context manager so workers are stopped and joined."""

    def __init__(self, workers: int, depth: int = 1) -> None:
        if workers < 1 or depth < 1:
            raise ValueError("workers and depth must be at least 1")
        self.workers = workers
        self.depth = depth
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wazuh-ecr-scan-read")
        self._live: set[PageStream[Any]] = set()

    def call(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn(*args)` in the pool; `result()` returns its value or raises its exception."""
        return self._pool.submit(fn, *args)

    def ordered(
        self,
        jobs: Iterable[J],
        pages_of: Callable[[J], Callable[[], Iterable[T]] | None],
    ) -> Iterator[tuple[J, PageStream[T] | None]]:
        """Each job with the stream of its pages, in the order of `jobs`, while the streams of the next
        jobs already run (at most `workers` at a time). `jobs` is pulled in the caller's thread;
        `pages_of(job)` gives the function a worker calls to get the job's pages, or None for a job
        without pages. A stream is cancelled once the caller moves past its job."""
        window: deque[tuple[J, PageStream[T] | None]] = deque()
        pending = iter(jobs)
        while True:
            self._fill(window, pending, pages_of)
            if not window:
                return
            job, stream = window.popleft()
            try:
                yield job, stream
            finally:
                if stream is not None:
                    stream.cancel()
                    self._live.discard(stream)

    def close(self) -> None:
        for stream in self._live:
            stream.cancel()
        self._live.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fill(
        self,
        window: deque[tuple[J, PageStream[T] | None]],
        pending: Iterator[J],
        pages_of: Callable[[J], Callable[[], Iterable[T]] | None],
    ) -> None:
        while len(window) < self.workers:
            try:
                job = next(pending)
            except StopIteration:
                return
            make_pages = pages_of(job)
            stream: PageStream[T] | None = None
            if make_pages is not None:
                stream = PageStream(self.depth)
                self._live.add(stream)
                self._pool.submit(stream.produce, make_pages)
            window.append((job, stream))
