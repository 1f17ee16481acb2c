"""Vocabulary changes, embedded on their own thread while frames keep the old vocabulary.

Embedding thousands of labels takes seconds; the frame worker must not wait for it. A change is
embedded here (on the CPU), then handed to the frame worker, which swaps labels and embeddings together
between two frames. A newer change, or a new model, supersedes one still in progress (counted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from blendclip_ros.conversions.cdr import warm_vocabulary

from .model import LoadedModel
from .worker import LatestOnlyWorker


class VocabularyUpdater:
    """Generations of requested and applied vocabularies; one embedding thread while configured."""

    def __init__(self, frames: LatestOnlyWorker, current_model: Callable[[], LoadedModel | None],
                 counters: Counter, warn: Callable[[str, str], None], on_applied: Callable[[], None]) -> None:
        self._frames, self._current_model = frames, current_model
        self._counters, self._warn, self._on_applied = counters, warn, on_applied
        self._thread: LatestOnlyWorker | None = None
        self.requested = 0  # generation of the newest accepted change
        self.applied = 0  # generation the model labels with

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def pending(self) -> bool:
        return self.requested != self.applied

    def start(self) -> None:
        """At configure: the model was just built with the current vocabulary."""
        self.applied = self.requested
        self._thread = LatestOnlyWorker(self._build, name='blendclip-vocabulary', on_error=self._failed)
        self._thread.start()  # ordinary priority whatever the executor's

    def stop(self) -> None:
        # An embedding in progress cannot be interrupted: its thread ends after it, and its result is
        # dropped (built for a model that is gone).
        if self._thread is not None:
            self._thread.stop(timeout=1.0)
            self._thread = None

    def request(self, model: LoadedModel, labels: Sequence[str], templates: Sequence[str]) -> None:
        self.requested += 1
        if not self._thread.submit((self.requested, model, labels, templates)):  # replaced a waiting one
            self._counters['vocabulary_updates_superseded'] += 1

    def _build(self, request: tuple) -> None:
        """Embedding thread: embed (seconds for thousands of labels) while frames keep the old one."""
        generation, model, labels, templates = request
        vocab = model.build_vocabulary(labels, templates)
        if generation != self.requested or model is not self._current_model():
            self._counters['vocabulary_updates_superseded'] += 1  # a newer change (or model) came meanwhile
            return
        warm_vocabulary(vocab.labels)
        self._frames.run_task('vocabulary swap', lambda: self._swap(generation, model, vocab))

    def _swap(self, generation: int, model: LoadedModel, vocab: Any) -> None:
        """Frame worker, between frames: labels and embeddings change together for the next frame."""
        if model is not self._current_model() or generation <= self.applied:
            self._counters['vocabulary_updates_superseded'] += 1
            return
        model.use_vocabulary(vocab)
        self.applied = generation
        self._counters['vocabulary_updates'] += 1
        self._on_applied()

    def _failed(self, what: str, exc: BaseException) -> None:
        self._counters['vocabulary_update_failures'] += 1
        self._warn('vocabulary', f'vocabulary update failed, the old one stays: {type(exc).__name__}: {exc}')


def vocabulary_msg(model: LoadedModel, stamp: Any) -> Any:
    """blendclip/Vocabulary of what `model` labels with now (published transient local)."""
    from blendclip.msg import Vocabulary

    msg = Vocabulary(version=model.vocabulary_version, labels=list(model.labels),
                     prompt_templates=list(model.templates), text_space=model.text_space)
    msg.header.stamp = stamp
    return msg
