"""Errors of the evaluation step: each message names the model, column or value at fault."""


class EvaluationError(ValueError):
    """The models or the training set cannot be evaluated as asked (unloadable model, wrong data, one class)."""


class ChampionError(EvaluationError):
    """The champion cannot be loaded or scored on the candidate's held-out rows: the gate refuses to bless
    blindly, so the step fails naming what is missing."""
