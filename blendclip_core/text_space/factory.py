"""Text spaces by spec string: what a model card records and what `create_text_space` builds.

    openclip:<model>:<pretrained tag | /path/to/weights | none>   e.g. openclip:ViT-B-16:datacomp_xl_s13b_b90k
    minilm:all-MiniLM-L6-v2
    toy                  seeded random vectors (`--data synthetic`); needs dim=, takes text_seed=
    file:<path.npz>      class embeddings computed elsewhere (arrays 'names', 'embeddings')

Every kind is registered in TEXT_SPACES; nothing heavy is imported until a space loads its model.
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


def _openclip(details: str, device: str, dim: int | None, **params) -> TextSpace:
    from blendclip_core.text_space.openclip import OpenClipSpace

    model, pretrained = parse_openclip_spec(details)
    return OpenClipSpace(model, pretrained, device=device, **params)


def _minilm(details: str, device: str, dim: int | None, **params) -> TextSpace:
    from blendclip_core.text_space.minilm import MODEL_NAME, MiniLMSpace

    if details not in ('', MODEL_NAME):
        raise UnknownTextSpaceError(f'the minilm text space has one model, {MODEL_NAME!r}; got {details!r}')
    return MiniLMSpace(device=device, **params)


def _toy(details: str, device: str, dim: int | None, text_seed: int = 0) -> TextSpace:
    from blendclip_core.text_space.toy import ToyTextSpace

    if details or dim is None:
        raise UnknownTextSpaceError("the toy text space is 'toy' with its width given (create_text_space("
                                    f"'toy', dim=...)); got {'toy:' + details!r}, dim={dim}")
    return ToyTextSpace(dim, int(text_seed))


def _file(details: str, device: str, dim: int | None) -> TextSpace:
    from blendclip_core.text_space.precomputed import PrecomputedTextSpace

    if not details:
        raise UnknownTextSpaceError('the file text space needs a path: file:<path.npz>')
    return PrecomputedTextSpace(details)


# kind -> builder(details after 'kind:', device, dim, **params)
TEXT_SPACES: dict[str, Callable[..., TextSpace]] = {
    'openclip': _openclip,
    'minilm': _minilm,
    'toy': _toy,
    'file': _file,
}


def create_text_space(spec: str, device: str = 'cpu', *, dim: int | None = None, **params) -> TextSpace:
    """Build (lazily: no model is loaded yet) the text space a spec string names.

    dim: the width the caller needs; a space whose width is free (toy) takes it, the others have their
    own (the classifier and the trainer check it). params: keyword arguments of the space's constructor.
    """
    kind, _, details = str(spec).partition(':')
    if kind not in TEXT_SPACES:
        raise UnknownTextSpaceError(f'unknown text space {spec!r}; known kinds: {sorted(TEXT_SPACES)} '
                                    '(e.g. openclip:ViT-B-16:datacomp_xl_s13b_b90k, minilm:all-MiniLM-L6-v2)')
    return TEXT_SPACES[kind](details, device, dim, **params)
