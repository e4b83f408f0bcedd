"""Feast feature components: apply a repository, materialize with a timestamp guard, build point-in-time training
sets and check online serving. Embedded stores by default (SQLite online, file registry, file/duckdb offline);
Redis online and a PostgreSQL registry by config. Feast is imported lazily inside the functions."""

from components.features.feast_import import install as _cheap_feast_import

_cheap_feast_import()  # before any feast import (see feast_import)
