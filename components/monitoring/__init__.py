"""Monitoring: which model is watched (the one serving now, or a given URI, with what it carries for monitoring)
and the training set a retrain uses (the model's own training set plus the new batch)."""
