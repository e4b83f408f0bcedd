"""Katib-style hyperparameter tuning: one spec mirroring Katib's Experiment, an Optuna engine that runs each trial
through the training launch backend, and reports (trials table, best parameters, optimization history)."""
