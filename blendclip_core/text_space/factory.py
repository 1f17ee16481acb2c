"""Text spaces by spec string: what a model card records and what `create_text_space` builds.

    openclip:<model>:<pretrained tag | /path/to/weights | none>   e.g. openclip:ViT-B-16:datacomp_xl_s13b_b90k
    minilm:all-MiniLM-L6-v2

Nothing heavy is imported until a space actually loads its model.
"""

from __future__ import annotations

from collections.abc import Callable

from blendclip_core.text_space.base import TextSpace, UnknownTextSpaceError


def parse_openclip_spec(details: str) -> tuple[str, str | None]:
    """'<model>:<pretrained>' -> (model, pretrained or None); hf-hub model names keep their colon."""
    prefix = ''
    if details.startswith('hf-hub:'):
        prefix, details = 'hf-hub:', details[len('hf-hub:'):]
    model, _, pretrained = details.partition(':')
    if not model:
        raise UnknownTextSpaceError(f'openclip spec needs a model name: openclip:<model>:<pretrained>, '
                                    f'got {"openclip:" + prefix + details!r}')
    return prefix + model, (None if pretrained in ('', 'none') else pretrained)


def _openclip(details: str, device: str) -> TextSpace:
    from blendclip_core.text_space.openclip import OpenClipSpace

    model, pretrained = parse_openclip_spec(details)
    return OpenClipSpace(model, pretrained, device=device)


def _minilm(details: str, device: str) -> TextSpace:
    from blendclip_core.text_space.minilm import MODEL_NAME, MiniLMSpace

    if details not in ('', MODEL_NAME):
        raise UnknownTextSpaceError(f'the minilm text space has one model, {MODEL_NAME!r}; got {details!r}')
    return MiniLMSpace(device=device)


TEXT_SPACES: dict[str, Callable[[str, str], TextSpace]] = {
    'openclip': _openclip,
    'minilm': _minilm,
}


def create_text_space(spec: str, device: str = 'cpu') -> TextSpace:
    """Build (lazily: no model is loaded yet) the text space a spec string names."""
    kind, _, details = str(spec).partition(':')
    if kind not in TEXT_SPACES:
        raise UnknownTextSpaceError(f'unknown text space {spec!r}; known kinds: {sorted(TEXT_SPACES)} '
                                    '(e.g. openclip:ViT-B-16:datacomp_xl_s13b_b90k, minilm:all-MiniLM-L6-v2)')
    return TEXT_SPACES[kind](details, device)
