"""The benchmark suite: each figure measured against a baseline of the same run."""
