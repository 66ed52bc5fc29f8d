"""ropebench: compare RoPE context-extension methods head to head."""

__version__ = "0.1.0"
