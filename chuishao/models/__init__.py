"""Classifiers and their save/load."""
