"""Serving: the KServe predictor (one class for every target), its model server process and launcher, lineage;
the canary rollout and the local traffic-splitting endpoint."""
