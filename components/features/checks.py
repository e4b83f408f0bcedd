"""Checks of parsed definitions before anything is registered, each failure naming the object at fault."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from components._core.artifacts import ArtifactError, is_local, local_path, scan_table
from components.features.repo import FeatureRepoError

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.repo_contents import RepoContents

_INT = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"}
_COMPATIBLE = {
    "Int32": _INT, "Int64": _INT,
    "Float32": _INT | {"Float32", "Float64"}, "Float64": _INT | {"Float32", "Float64"},
    "String": {"String", "Categorical", "Enum"}, "Bool": {"Boolean"}, "Bytes": {"Binary"},
    "UnixTimestamp": {"Datetime"},
}


def override_sources(contents: RepoContents, source_paths: dict[str, str]) -> None:
    """Point the named file sources at new data (Parquet, e.g. the pipeline's artifacts); unknown names fail."""
    from feast import FileSource
    from feast.data_format import ParquetFormat

    by_name = {ds.name: ds for ds in contents.data_sources}
    for fv in contents.feature_views:
        if fv.batch_source is not None:
            by_name.setdefault(fv.batch_source.name, fv.batch_source)
    for name, _uri in sorted(source_paths.items()):
        if name not in by_name:
            raise FeatureRepoError(f"source_paths names data source {name!r}, which the repository does not define "
                                   f"(it defines {sorted(by_name)})")
        if not isinstance(by_name[name], FileSource):
            raise FeatureRepoError(f"data source {name!r} is a {type(by_name[name]).__name__}, not a FileSource: "
                                   "its location cannot be overridden")
    for ds in [*contents.data_sources, *(fv.batch_source for fv in contents.feature_views if fv.batch_source)]:
        if ds.name in source_paths:
            ds.file_options.uri = _absolute(source_paths[ds.name])  # type: ignore[attr-defined]
            if ds.file_options.file_format is None:  # type: ignore[attr-defined]
                ds.file_options.file_format = ParquetFormat()  # type: ignore[attr-defined]


def check_definitions(contents: RepoContents, repo_dir: Path, offline: str = "file") -> None:
    """Names unique, entities and views referenced exist, file sources readable with the declared columns (and,
    for the duckdb offline store, microsecond timestamps: it cannot cast nanosecond ones)."""
    for kind, names in (("entity", [e.name for e in contents.entities]),
                        ("feature view", [v.name for v in _views(contents)]),
                        ("data source", [d.name for d in contents.data_sources]),
                        ("feature service", [s.name for s in contents.feature_services])):
        dups = sorted(n for n, c in Counter(names).items() if c > 1)
        if dups:
            raise FeatureRepoError(f"{kind} {dups[0]!r} is defined more than once")
    if not _views(contents):
        raise FeatureRepoError("the feature repository defines no feature view")
    entities = {e.name: e for e in contents.entities}
    for fv in contents.feature_views:
        missing = [e for e in fv.entities if e not in entities]
        if missing:
            raise FeatureRepoError(f"feature view {fv.name!r} uses entity {missing[0]!r}, which is not defined "
                                   f"(defined: {sorted(n for n in entities if n != '__dummy')})")
        _check_source(fv, [entities[e].join_key for e in fv.entities], repo_dir, offline)
    views = {v.name: v for v in _views(contents)}
    for svc in contents.feature_services:
        for proj in svc.feature_view_projections:
            if proj.name not in views:
                raise FeatureRepoError(f"feature service {svc.name!r} uses feature view {proj.name!r}, "
                                       "which is not defined")
            known = {f.name for f in views[proj.name].features}
            unknown = [f.name for f in proj.features if f.name not in known]
            if unknown:
                raise FeatureRepoError(f"feature service {svc.name!r} asks feature view {proj.name!r} for "
                                       f"feature {unknown[0]!r}, which it does not have")


def _views(contents: RepoContents) -> list:
    return [*contents.feature_views, *contents.on_demand_feature_views, *contents.stream_feature_views]


def _absolute(uri: str) -> str:
    return str(Path(local_path(uri)).resolve()) if is_local(uri) else uri


def _check_source(fv: FeatureView, join_keys: list[str], repo_dir: Path, offline: str) -> None:
    from feast import FileSource

    src = fv.batch_source
    if src is None:
        raise FeatureRepoError(f"feature view {fv.name!r} has no batch source")
    if not isinstance(src, FileSource):
        return  # other sources are validated by their offline store
    uri = src.path
    if is_local(uri) and not Path(local_path(uri)).is_absolute():
        uri = str(repo_dir / local_path(uri))
    try:
        schema = scan_table(uri, "parquet").collect_schema()
    except (ArtifactError, pl.exceptions.PolarsError, OSError) as err:
        raise FeatureRepoError(f"feature view {fv.name!r}: data source {src.name!r} cannot be read at "
                               f"{src.path} ({str(err).splitlines()[0]}); point it at the data with "
                               f"source_paths={{{src.name!r}: URI}}") from None
    mapping = {v: k for k, v in (src.field_mapping or {}).items()}
    what = f"feature view {fv.name!r} (data source {src.name!r} at {src.path})"

    def column(name: str) -> pl.DataType:
        col = mapping.get(name, name)
        if col not in schema:
            raise FeatureRepoError(f"{what}: column {col!r} is missing (columns: {list(schema)})")
        return schema[col]

    ts = column(src.timestamp_field) if src.timestamp_field else None
    if ts is None or not isinstance(ts, pl.Datetime):
        raise FeatureRepoError(f"{what}: timestamp field {src.timestamp_field!r} must be a datetime column, got {ts}")
    for name in filter(None, [src.timestamp_field, src.created_timestamp_column]):
        dtype = column(name)
        if offline == "duckdb" and isinstance(dtype, pl.Datetime) and dtype.time_unit == "ns":
            raise FeatureRepoError(f"{what}: column {name!r} is {dtype}; the duckdb offline store needs microsecond "
                                   "timestamps (write the data with time unit 'us', or use the file offline store)")
    for key in join_keys:
        if key != "__dummy_id":
            column(key)
    for field in fv.features:
        dtype, declared = column(field.name), str(field.dtype)
        allowed = _COMPATIBLE.get(declared)
        if allowed is not None and dtype.base_type().__name__ not in allowed:
            raise FeatureRepoError(f"{what}: feature {field.name!r} is declared {declared} but the column is {dtype}")
