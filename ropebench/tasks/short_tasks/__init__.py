"""The project's offline short-context task set for lm-eval (YAML + JSONL, built by build.py)."""
