"""Model evaluation and the deployment gate: held-out metrics, per-slice metrics, calibration, a paired
bootstrap comparison with the champion, and a blessing the pipeline branches on.

Logic only (no ``kfp`` imports): the KFP wrapper calls :func:`components.evaluation.step.evaluate_step`.
"""
