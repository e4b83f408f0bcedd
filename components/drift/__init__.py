"""Drift checks: a monitoring bundle saved with a trained model (a bounded reference sample with the model's
predictions, column roles, the validation contract), per-column drift statistics computed over every row with
Evidently's methods, automatic choices and thresholds, a dataset verdict, and Evidently's HTML report on a
stated, seeded sample.

Logic only (no ``kfp`` imports): the KFP wrapper calls :func:`components.drift.step.drift_step`.
"""
