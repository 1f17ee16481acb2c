"""Fixtures of the trainer tests."""

import pytest
from train_testutil import FAST


@pytest.fixture
def fast_args():
    return list(FAST)
