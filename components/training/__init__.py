"""Distributed PyTorch training: one trainer program, launched locally, as a PyTorchJob or a Vertex
CustomJob."""
