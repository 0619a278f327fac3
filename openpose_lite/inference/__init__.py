"""Inference: predictors and the person boxes the top-down branch needs."""
