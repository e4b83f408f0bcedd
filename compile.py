"""Compile every pipeline (Kubeflow and Vertex) and every component; same as ``catalog compile``."""

import sys

from catalog.cli import main

if __name__ == "__main__":
    sys.exit(main(["compile", *sys.argv[1:]]))
