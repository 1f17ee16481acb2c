"""ROS time stamps <-> integer nanoseconds, the one conversion every tool and test uses.

Pairing, bag records and latency all count in int nanoseconds; messages carry builtin_interfaces/Time
(sec int32, nanosec uint32). Readers use only attribute names, so rclpy and rosbags stamps both work.
"""

from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def to_ns(sec: int, nanosec: int) -> int:
    """(sec, nanosec) -> nanoseconds, nanosec taken as given (even out of range, as a publisher sent it)."""
    return int(sec) * NS_PER_S + int(nanosec)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (or anything with .sec and .nanosec) -> nanoseconds."""
    return to_ns(stamp.sec, stamp.nanosec)


def split_ns(ns: int) -> tuple[int, int]:
    """Nanoseconds -> (sec, nanosec) with 0 <= nanosec < 1e9."""
    return int(ns) // NS_PER_S, int(ns) % NS_PER_S


def ns_to_stamp(ns: int) -> Any:
    """Nanoseconds -> builtin_interfaces/Time (rclpy's message class)."""
    from builtin_interfaces.msg import Time

    sec, nanosec = split_ns(ns)
    return Time(sec=sec, nanosec=nanosec)
