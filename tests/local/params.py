"""Pipeline parameters that keep a local run short where a test is not about tuning: one tuning trial, one rank."""

import json

QUICK = ["tuning_spec=" + json.dumps({
    "objective": {"type": "maximize", "objectiveMetricName": "val_auc"},
    "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
    "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.002", "max": "0.004"}}],
    "parallelTrialCount": 1, "maxTrialCount": 1, "maxFailedTrialCount": 1}),
    "launch=" + json.dumps({"backend": "local", "world_size": 1})]
