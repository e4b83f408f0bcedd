"""Shared runtime used by every component: config, artifacts, backends, images."""
