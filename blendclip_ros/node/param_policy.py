"""Which parameter changes the node accepts, and why it refuses the others: a pure function.

rclpy itself refuses read-only, out-of-range, wrongly typed and undeclared values (the descriptors in
params.py); what is left is decided here, without a node: dynamic values are validated, configure-time
ones are accepted only while unconfigured, and labels + templates are checked together as the
classifier will check them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import params as P

VOCABULARY_NAMES = frozenset({'vocabulary', 'prompt_templates'})


@dataclass(frozen=True)
class Decision:
    reason: str = ''  # '' = accepted; else why not (the parameter service returns it)
    updates: dict[str, Any] = field(default_factory=dict)  # dynamic values to apply when accepted

    @property
    def accepted(self) -> bool:
        return not self.reason


def review(changes: Iterable[tuple[str, Any]], configured: bool, vocabulary: Sequence[str],
           templates: Sequence[str], model: Any = None) -> Decision:
    """changes: (name, value) pairs set together; configured: the node is past configure; vocabulary,
    templates: the current ones (a change of one is checked with the other); model: the loaded model,
    whose `vocabulary_reason` may refuse labels it cannot embed (an exported model has only its own)."""
    updates = {}
    for name, value in changes:
        if name in P.DYNAMIC_NAMES:
            reason = P.validate_dynamic(name, value)
            if reason:
                return Decision(reason)
            updates[name] = tuple(value) if isinstance(value, (list, tuple)) else value
        elif name in P.CONFIGURE_NAMES:
            reason = _configure_time_problem(name, value, configured)
            if reason:
                return Decision(reason)
    if VOCABULARY_NAMES & updates.keys():
        reason = _vocabulary_problem(updates.get('vocabulary', vocabulary),
                                     updates.get('prompt_templates', templates))
        if not reason and model is not None and 'vocabulary' in updates:
            reason = model.vocabulary_reason(updates['vocabulary'])
        if reason:
            return Decision(reason)
    return Decision(updates=updates)


def _configure_time_problem(name: str, value: Any, configured: bool) -> str | None:
    if configured:
        return (f'{name} is applied at configure: deactivate and clean up the node first (or restart it '
                'with the new value)')
    if name == 'static_transforms':
        try:
            P.parse_static_transforms(value or ())
        except ValueError as exc:
            return str(exc)
    if name in P.TOPIC_NAMES:
        return P.validate_topic(name, value)
    return None


def _vocabulary_problem(labels: Sequence[str], templates: Sequence[str]) -> str | None:
    """The core rules for labels + templates together, as the classifier applies them (e.g. 'a  b' and
    'a b' collide)."""
    from blendclip_core.vocabulary import VocabularyError, validate_vocabulary

    try:
        validate_vocabulary(list(labels), list(templates))
    except VocabularyError as exc:
        return str(exc)
    return None


def count_rejections(setter: Callable[[list], Any], parameters: list, rejected: Callable[[str], None]) -> Any:
    """`setter(parameters)` (rclpy's set_parameters or set_parameters_atomically), calling `rejected`
    once for every refusal: results that are not successful, or an exception (re-raised)."""
    try:
        results = setter(parameters)
    except Exception as exc:
        rejected(str(exc))
        raise
    for result in results if isinstance(results, list) else [results]:
        if not result.successful:
            rejected(result.reason)
    return results
