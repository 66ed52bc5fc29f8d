"""Fixtures shared across test modules."""

import pytest
import torch
from helpers import tiny_llama, tiny_tokenizer


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


@pytest.fixture(scope="module")
def model_dir32(tmp_path_factory):
    """A saved tiny Llama (32-token window) with its tokenizer: a model folder for CLI tests."""
    directory = tmp_path_factory.mktemp("model")
    tiny_llama(window=32).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_dir128(tmp_path_factory):
    """A saved tiny Llama (128-token window, seed 0) with its tokenizer: plans and runs at a few
    hundred tokens."""
    directory = tmp_path_factory.mktemp("model")
    tiny_llama(window=128, seed=0).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture
def no_weights(monkeypatch):
    """Loading weights fails the test: every refusal checked with it must come before that."""
    import ropebench.model.load as load

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(load, "load_model", refuse)
