"""Default configurations of the pipelines, as JSON strings: small enough to finish quickly on one machine.

They are data here (compiling stays light); tests/unit/test_pipeline_defaults.py validates each one against its
config model, so a bad default fails the suite, not a run.
"""

import json

TRAINER_CONFIG = json.dumps({
    "label_column": "label",
    "hidden_sizes": [64, 32],
    "dropout": 0.1,
    "lr": 0.003,
    "batch_size": 64,
    "max_epochs": 40,
    "early_stopping": {"metric": "val_auc", "patience": 6},
    "seed": 7,
}, sort_keys=True)

TUNING_SPEC = json.dumps({
    "objective": {"type": "maximize", "objectiveMetricName": "val_auc"},
    "algorithm": {"algorithmName": "tpe", "algorithmSettings": [
        {"name": "random_state", "value": "7"}, {"name": "n_startup_trials", "value": "2"}]},
    "parameters": [
        {"name": "lr", "parameterType": "double",
         "feasibleSpace": {"min": "0.0005", "max": "0.03", "distribution": "logUniform"}},
        {"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": "0.0", "max": "0.3"}},
    ],
    "parallelTrialCount": 1,
    "maxTrialCount": 3,
    "maxFailedTrialCount": 1,
    "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
        {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "4"}]},
}, sort_keys=True)

LAUNCH = json.dumps({"backend": "local", "world_size": 2, "timeout_s": 1800}, sort_keys=True)

TUNE = json.dumps({"engine": "optuna"}, sort_keys=True)
