"""Training, evaluation and reports."""
