"""Bag messages that do not deserialise: skipped, counted per topic and named (topic, log time).

One bad record must not end a pass over a bag (label-bag, eval): a recorder stores whatever a
publisher sent, and a disk can damage a record. Every reader of a bag that decodes messages counts
them here and prints the same summary lines.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_NAMED = 20  # the summary names this many; the count covers all of them


@dataclass
class CorruptMessages:
    by_topic: Counter = field(default_factory=Counter)
    named: list[tuple[str, int, str]] = field(default_factory=list)  # (topic, log time ns, reason)

    @property
    def total(self) -> int:
        return sum(self.by_topic.values())

    def add(self, topic: str, t_ns: int, exc: BaseException) -> None:
        reason = ' '.join(str(exc).split()) or type(exc).__name__
        self.by_topic[topic] += 1
        if len(self.named) < MAX_NAMED:
            self.named.append((topic, int(t_ns), reason))
        log.warning('skipping corrupt message on %s at %d ns: %s', topic, t_ns, reason)

    def lines(self) -> list[str]:
        if not self.total:
            return []
        per_topic = ', '.join(f'{t} {n}' for t, n in sorted(self.by_topic.items()))
        out = [f'corrupt messages skipped: {self.total} ({per_topic})']
        out += [f'  {topic} at {t} ns: {reason}' for topic, t, reason in self.named]
        if self.total > len(self.named):
            out.append(f'  ... and {self.total - len(self.named)} more')
        return out

    def as_dict(self) -> dict:
        return {'total': self.total, 'by_topic': dict(self.by_topic),
                'first': [{'topic': t, 'log_time_ns': s, 'reason': r} for t, s, r in self.named]}
