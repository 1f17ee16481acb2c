"""Pairs clouds with box arrays by header stamp, without message_filters (no wheel of it exists).

Pure Python (stamps in integer nanoseconds, payloads opaque), so it is tested without rclpy. Policy:
a new message is matched to the closest queued message of the other stream whose stamp is within
`slop_ns` (0 = exact match). A match consumes both and evicts everything older on both streams
(those can no longer pair in order). Unmatched messages wait in bounded queues; overflow evicts the
oldest. Anything not newer than the last matched stamp is stale and dropped. Every drop is counted.

One bad stamp must not poison the ordering state (`_last_paired_ns`), or every later message would be
stale until a reset:
- a stamp more than `max_future_ns` ahead of the clock is dropped before it can pair (`from_future`);
  skipped while the clock reads 0 (simulated time before the first /clock message); a pair stamped
  ahead of the clock within that bound is labelled but does not move the ordering point, so the
  correctly stamped frames after it are not stale (a sensor clock running ahead of the node's thus
  turns the stale check off for that sensor, rather than losing its frames);
- a stamp more than `jump_back_ns` older than the last pair may be a restart (bag loop, clock reset) or
  one bad message: it waits in queues of its own (`jumped_back`), and only when a cloud and a box array
  from there pair with each other are the old queues and the last pair forgotten (`resets`) and the new
  timeline taken up from that pair. One message from the past can never flush a valid frame;
- `stale_reset_after` stale messages in a row with no pair between them (a restart shorter than the
  jump bound, or a future pair let through with the future check off) reset the same way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

CLOUD = 'cloud'
BOXES = 'boxes'
# Stale messages in a row (both inputs, no pair between them) taken to mean the stamps restarted: a
# healthy stream has a stale message now and then, a restarted one has nothing else (2 s at 10 Hz).
STALE_RESET_AFTER = 40
DROP, PAST, NOW = 'drop', 'past', 'now'  # what _verdict says of an input's stamp


@dataclass(frozen=True)
class Pair:
    """One cloud and the box array that goes with it."""

    cloud: Any
    boxes: Any
    cloud_stamp_ns: int
    boxes_stamp_ns: int


@dataclass
class SyncCounters:
    paired: int = 0
    stale: int = 0  # stamp not newer than the last pair (late or replayed message)
    too_old: int = 0  # stamp older than `max_age_ns` behind the clock
    evicted_unpaired: int = 0  # waited, never found a partner
    duplicate_stamp: int = 0  # a second message with the same stamp on the same stream
    from_future: int = 0  # stamp more than `max_future_ns` ahead of the clock
    resets: int = 0  # the stamps restarted (jump back, or a run of stale messages): state forgotten
    jumped_back: int = 0  # stamp far behind the last pair: held apart until it pairs (then a reset)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class StampSynchronizer:
    """Approximate (or exact, slop 0) time pairing of two streams with bounded queues."""

    def __init__(self, slop_ns: int = 0, queue_size: int = 10, max_age_ns: int = 0, *, max_future_ns: int = 0,
                 jump_back_ns: int = 0, stale_reset_after: int = STALE_RESET_AFTER) -> None:
        """max_age_ns, max_future_ns, jump_back_ns, stale_reset_after: 0 = that rule is off."""
        if min(slop_ns, max_age_ns, max_future_ns, jump_back_ns, stale_reset_after) < 0 or queue_size < 1:
            raise ValueError('slop_ns, max_age_ns, max_future_ns, jump_back_ns and stale_reset_after must be '
                             '>= 0, queue_size >= 1')
        self.slop_ns = int(slop_ns)
        self.queue_size = int(queue_size)
        self.max_age_ns = int(max_age_ns)
        self.max_future_ns = int(max_future_ns)
        self.jump_back_ns = int(jump_back_ns)
        self.stale_reset_after = int(stale_reset_after)
        self.counters = SyncCounters()
        self._queues: dict[str, OrderedDict[int, Any]] = {CLOUD: OrderedDict(), BOXES: OrderedDict()}
        # inputs from far behind the last pair: a new timeline if they pair among themselves
        self._past: dict[str, OrderedDict[int, Any]] = {CLOUD: OrderedDict(), BOXES: OrderedDict()}
        self._last_paired_ns: int | None = None
        self._stale_run = 0  # stale messages since the last pair
        # Subscriptions may run on several executor threads; pairing must stay atomic.
        self._lock = threading.Lock()

    def add_cloud(self, stamp_ns: int, msg: Any, now_ns: int | None = None) -> Pair | None:
        return self._add(CLOUD, stamp_ns, msg, now_ns)

    def add_boxes(self, stamp_ns: int, msg: Any, now_ns: int | None = None) -> Pair | None:
        return self._add(BOXES, stamp_ns, msg, now_ns)

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {k: len(q) for k, q in self._queues.items()}

    def reset(self) -> None:
        """Forget queued messages and the last pair (after deactivate or a clock jump)."""
        with self._lock:
            self._forget()

    def _forget(self) -> None:
        for q in (*self._queues.values(), *self._past.values()):
            q.clear()
        self._last_paired_ns = None
        self._stale_run = 0

    def _restart(self) -> None:
        """The stamps restarted: what is queued belongs to the old timeline."""
        self.counters.resets += 1
        self.counters.evicted_unpaired += sum(len(q) for q in (*self._queues.values(), *self._past.values()))
        self._forget()

    def _verdict(self, stamp_ns: int, now_ns: int | None) -> str:
        """DROP (counted), PAST (far behind the last pair: held apart) or NOW. The lock is held."""
        clock = now_ns is not None and now_ns > 0  # 0: simulated time before the first /clock
        if self.max_future_ns and clock and stamp_ns - now_ns > self.max_future_ns:
            self.counters.from_future += 1
            return DROP
        if self.max_age_ns and clock and now_ns - stamp_ns > self.max_age_ns:
            self.counters.too_old += 1
            return DROP
        last = self._last_paired_ns
        if last is None or stamp_ns > last:
            return NOW
        if self.jump_back_ns and last - stamp_ns > self.jump_back_ns:
            self.counters.jumped_back += 1
            return PAST
        self.counters.stale += 1
        self._stale_run += 1
        if self.stale_reset_after and self._stale_run >= self.stale_reset_after:
            self._restart()  # this message was dropped; the next ones pair afresh
        return DROP

    def _add(self, stream: str, stamp_ns: int, msg: Any, now_ns: int | None) -> Pair | None:
        stamp_ns = int(stamp_ns)
        with self._lock:
            verdict = self._verdict(stamp_ns, now_ns)
            if verdict == DROP:
                return None
            pair = self._match(self._past if verdict == PAST else self._queues, stream, stamp_ns, msg)
            if pair is not None and verdict == PAST:  # the stamps restarted: take up the new timeline
                self._restart()
            newest = max(pair.cloud_stamp_ns, pair.boxes_stamp_ns) if pair is not None else None
            if newest is not None and not (now_ns is not None and 0 < now_ns < newest):
                self._last_paired_ns = newest
            # A pair stamped ahead of the clock (within the future bound, or nanosec out of range) is
            # labelled but orders nothing: later frames stamped before it, correctly, must not be stale.
            return pair

    def _match(self, queues: dict[str, OrderedDict[int, Any]], stream: str, stamp_ns: int,
               msg: Any) -> Pair | None:
        other = queues[BOXES if stream == CLOUD else CLOUD]
        match = self._closest(other, stamp_ns)
        if match is None:
            self._enqueue(queues[stream], stamp_ns, msg)
            return None
        partner = other.pop(match)
        self._evict_older(queues, max(stamp_ns, match))
        self._stale_run = 0
        self.counters.paired += 1
        if stream == CLOUD:
            return Pair(msg, partner, stamp_ns, match)
        return Pair(partner, msg, match, stamp_ns)

    def _closest(self, queue: OrderedDict[int, Any], stamp_ns: int) -> int | None:
        best, best_gap = None, self.slop_ns + 1
        for stamp in queue:
            gap = abs(stamp - stamp_ns)
            if gap < best_gap:
                best, best_gap = stamp, gap
        return best

    def _enqueue(self, queue: OrderedDict[int, Any], stamp_ns: int, msg: Any) -> None:
        if stamp_ns in queue:
            self.counters.duplicate_stamp += 1  # keep the newer message: it is the one a sender meant
        queue[stamp_ns] = msg
        # Queues stay sorted by stamp so eviction takes the oldest, even for out-of-order arrivals.
        if len(queue) > 1 and next(reversed(queue)) != max(queue):
            items = sorted(queue.items())
            queue.clear()
            queue.update(items)
        while len(queue) > self.queue_size:
            queue.popitem(last=False)
            self.counters.evicted_unpaired += 1

    def _evict_older(self, queues: dict[str, OrderedDict[int, Any]], stamp_ns: int) -> None:
        for queue in queues.values():
            for stamp in [s for s in queue if s <= stamp_ns]:
                del queue[stamp]
                self.counters.evicted_unpaired += 1
