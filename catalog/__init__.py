"""The ``catalog`` command: local runs, compilation for Kubeflow and Vertex, component listing."""
