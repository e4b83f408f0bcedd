"""Canary rollout: one state machine (deploy at N % → ready → smoke test → compare → promote or roll back) over
three serving backends (local model servers, KServe, Vertex)."""
