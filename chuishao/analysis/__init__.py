"""Analysts' tools: the model registry, model comparisons, promotion gates, the HTML report."""
