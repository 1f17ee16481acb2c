"""Real data of ../shared/data for the dataset tests (skipped with the reason when absent)."""

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / 'shared' / 'data'


def real(*parts: str) -> Path:
    """A path under ../shared/data; the test is skipped (saying which) when it is not there."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f'real data not present: {path} (see ../shared/data/README.md)')
    return path
