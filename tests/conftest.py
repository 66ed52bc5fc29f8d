"""Fixtures shared across test modules."""

import pytest
import torch
from helpers import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    """The tiny test tokenizer (built locally, nothing downloaded); one per module."""
    return tiny_tokenizer()


@pytest.fixture
def one_thread():
    """Micro models: extra threads cost more than they save, above all on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
