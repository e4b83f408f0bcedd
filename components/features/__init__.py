"""Feast feature components: apply a repository, materialize with a timestamp guard, build point-in-time training
sets and check online serving. Embedded stores by default (SQLite online, file registry, file/duckdb offline);
Redis online and a PostgreSQL registry by config. Feast is imported lazily inside the functions."""

from components.features.lazy_typechecks import install as _lazy_typechecks

_lazy_typechecks()  # before any feast import: feast's @typechecked classes are instrumented on first call
