"""The built-in reference model: a tiny Llama pretrained by ropebench on CPU at a 512-token window."""
