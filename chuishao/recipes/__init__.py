"""Recipes that make a model from several trainings (classical models, an encoder) and one config."""
