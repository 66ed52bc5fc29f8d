"""RULER: generators, templates, scoring and aggregation (NVIDIA/RULER, arXiv 2404.06654)."""
