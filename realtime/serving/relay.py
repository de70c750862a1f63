"""The relay that gives each result of a stream once to every attached sink (after aiortc's ``MediaRelay``).

:class:`SinkRelay` runs each attached :class:`realtime.serving.sink.OutputSink`'s ``compose`` on the
generation worker thread (:meth:`SinkRelay.compose`, inside the generation job) and, on the event loop, puts
each composed item into that sink's own latest-wins feed (:class:`realtime.serving.workers.LatestSlot`). A
slow sink therefore drops its own stale items and delays neither the other sinks nor the pipeline; a sink
that raises is logged and detached while the stream goes on. :class:`ComposedFrame` is one frame with its
sinks' composed items, on its way from the worker to the relay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtime.serving.sink import GeneratedFrame, OutputSink
from realtime.serving.workers import LatestSlot, SlotClosed, log_if_failed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComposedFrame:
    """A generated frame and what each sink attached when it was made composed of it.

    Attributes:
        frame: the stream's result.
        items: ``(sink, composed item)`` for each sink whose ``compose`` succeeded.
        failures: ``(sink, exception)`` for each sink whose ``compose`` raised.
    """

    frame: GeneratedFrame
    items: tuple[tuple[OutputSink[Any], Any], ...]
    failures: tuple[tuple[OutputSink[Any], Exception], ...] = ()


@dataclass
class _Attachment:
    feed: LatestSlot[Any]
    on_dropped: Callable[[int], None] | None
    task: asyncio.Task[None] | None = None


class SinkRelay:
    """Fans each :class:`ComposedFrame` of ``source`` out to the attached sinks, each through its own feed.

    Use on one event loop: :meth:`attach` and :meth:`detach` at any time (also while the stream runs),
    :meth:`start` once, :meth:`stop` at the end (idempotent: detaches and stops every sink).
    :meth:`compose` is the one method called from the generation worker thread; it sees the sinks attached
    at that moment.

    When ``source`` closes (the camera ended), every feed is closed: sinks see the end of their input (the
    browser's track ends) but are stopped only by :meth:`stop` or :meth:`detach`.

    Args:
        source: the generation stage's output slot.
    """

    def __init__(self, source: LatestSlot[ComposedFrame]) -> None:
        self._source = source
        self._attached: dict[OutputSink[Any], _Attachment] = {}
        self._sinks: tuple[OutputSink[Any], ...] = ()  # replaced whole: the worker thread reads it
        self._task: asyncio.Task[None] | None = None
        self._detaching: set[asyncio.Task[None]] = set()
        self._ended = False
        self._stopped = False

    @property
    def sinks(self) -> tuple[OutputSink[Any], ...]:
        """The sinks attached now, in the order attached."""
        return self._sinks

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The relay's task, once started."""
        return self._task

    def attach(self, sink: OutputSink[Any], *, on_dropped: Callable[[int], None] | None = None) -> None:
        """Attach ``sink`` (event loop): it gets every frame generated from now on.

        Args:
            sink: the output; its :meth:`~realtime.serving.sink.OutputSink.start` is called here.
            on_dropped: called with the sink's feed's drop count after each item put into it.

        Raises:
            RuntimeError: after :meth:`stop`, or for a sink already attached.
            Whatever the sink's ``start`` raises (the sink is then not attached).
        """
        if self._stopped:
            raise RuntimeError(f"cannot attach {sink.name!r}: the stream has stopped")
        if sink in self._attached:
            raise RuntimeError(f"{sink.name!r} is already attached to this stream")
        attachment = _Attachment(LatestSlot(), on_dropped)
        attachment.task = sink.start(attachment.feed)
        self._attached[sink] = attachment
        self._sinks = (*self._sinks, sink)
        if attachment.task is not None:
            attachment.task.add_done_callback(lambda task: self._sink_task_done(sink, task))
        if self._ended:
            attachment.feed.close()
        log.debug("sink %r attached", sink.name)

    async def detach(self, sink: OutputSink[Any]) -> None:
        """Detach ``sink`` and await its :meth:`~realtime.serving.sink.OutputSink.stop` (a sink whose stop
        raises is logged). Does nothing for a sink not attached."""
        attachment = self._attached.pop(sink, None)
        if attachment is None:
            return
        self._sinks = tuple(s for s in self._sinks if s is not sink)
        attachment.feed.close()
        try:
            await sink.stop()
        except Exception:
            log.exception("sink %r failed while stopping", sink.name)
        log.debug("sink %r detached", sink.name)

    def compose(self, frame: GeneratedFrame) -> ComposedFrame:
        """Every attached sink's composition of ``frame`` (generation worker thread). A sink that raises is
        left out of the items and listed in the failures (the relay detaches it on the loop)."""
        items: list[tuple[OutputSink[Any], Any]] = []
        failures: list[tuple[OutputSink[Any], Exception]] = []
        for sink in self._sinks:
            try:
                items.append((sink, sink.compose(frame)))
            except Exception as exc:
                failures.append((sink, exc))
        return ComposedFrame(frame, tuple(items), tuple(failures))

    def start(self) -> None:
        """Start the task that takes each composed frame from the source and hands it out (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sink-relay")
            self._task.add_done_callback(log_if_failed)

    async def _run(self) -> None:
        try:
            while True:
                try:
                    composed = await self._source.get()
                except SlotClosed:
                    return
                self.publish(composed)
        finally:
            self._ended = True
            for attachment in self._attached.values():
                attachment.feed.close()

    def publish(self, composed: ComposedFrame) -> None:
        """Put each composed item into its sink's feed and detach the sinks that failed (event loop; only
        hands over). Items of sinks detached since the frame was composed are discarded."""
        for sink, item in composed.items:
            attachment = self._attached.get(sink)
            if attachment is None or attachment.feed.closed:
                continue
            attachment.feed.put(item)
            if attachment.on_dropped is not None:
                attachment.on_dropped(attachment.feed.dropped)
        for sink, exc in composed.failures:
            if sink in self._attached:
                log.error("sink %r failed to compose a frame; detaching it", sink.name, exc_info=exc)
                self._detach_soon(sink)

    def _sink_task_done(self, sink: OutputSink[Any], task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None or sink not in self._attached:
            return
        log.error("sink %r failed; detaching it", sink.name, exc_info=task.exception())
        self._detach_soon(sink)

    def _detach_soon(self, sink: OutputSink[Any]) -> None:
        task = asyncio.get_running_loop().create_task(self.detach(sink), name=f"detach-{sink.name}")
        self._detaching.add(task)
        task.add_done_callback(self._detaching.discard)

    async def stop(self) -> None:
        """Stop handing out frames, then detach and stop every sink (each even if another's stop fails).
        Idempotent."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for sink in list(self._attached):
            await self.detach(sink)
        while self._detaching:
            await asyncio.gather(*self._detaching, return_exceptions=True)
