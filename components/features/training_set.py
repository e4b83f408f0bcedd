"""Training set: point-in-time correct ``get_historical_features`` for labelled entity rows -> Parquet.

Every label row is kept, in its input order: a feature with no value at or before the row's timestamp within its
view's TTL is an explicit null, and nulls are counted in the metadata. The entity table is checked before any
work (join keys present and non-null, a real datetime timestamp column); the output appears only when complete.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Self

import polars as pl
from pydantic import Field, field_validator, model_validator

from components._core.artifacts import ArtifactError, format_of, read_table, write_parquet
from components._core.config import StrictConfig
from components.features.repo import FeatureRepoError, opened_store

if TYPE_CHECKING:
    from feast import FeatureStore

ROW_ID = "__catalog_row"
PAIR_ID = "__catalog_pair"
_POLARS: dict[str, Any] = {"Int32": pl.Int32, "Int64": pl.Int64, "Float32": pl.Float32, "Float64": pl.Float64,
                           "String": pl.String, "Bool": pl.Boolean}
FEAST_TS = "event_timestamp"


class FeatureSelection(StrictConfig):
    """Which features: references, a feature service, or (neither) every feature of every feature view."""

    features: list[str] = Field(default_factory=list, max_length=10_000,
                                description="'view:feature' references; empty: every feature of every view")
    feature_service: str | None = Field(None, min_length=1, max_length=256,
                                        description="a registered feature service instead of features")

    @field_validator("features")
    @classmethod
    def _references(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f.count(":") != 1 or f.startswith(":") or f.endswith(":")]
        if bad:
            raise ValueError(f"feature reference {bad[0]!r} is not 'view:feature'")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.features and self.feature_service:
            raise ValueError("give features or feature_service, not both")
        return self


class TrainingSetConfig(FeatureSelection):
    """Which features to join onto which columns of the entity table."""

    timestamp_column: str = Field("event_timestamp", min_length=1, max_length=256,
                                  description="label time column of the entity table (datetime)")
    label_columns: list[str] = Field(default_factory=lambda: ["label"], max_length=1000,
                                     description="columns carried through unchanged (labels, weights)")
    full_feature_names: bool = Field(False, description="name output columns 'view__feature'")
    max_missing_share: float = Field(1.0, ge=0, le=1,
                                     description="fail if more rows than this share miss any feature")


@dataclass(frozen=True)
class TrainingSetResult:
    """Rows, columns and missing values of the written training set."""

    rows: int
    features: list[str]
    rows_with_missing: int
    missing: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_metadata(self) -> dict[str, Any]:
        """Flat metadata: counts plus one ``missing.<feature>`` entry per feature."""
        out: dict[str, Any] = {k: v for k, v in asdict(self).items() if k not in ("missing", "features")}
        out["features"] = ",".join(self.features)
        out["missing_share"] = round(self.rows_with_missing / self.rows, 6) if self.rows else 0.0
        out.update({f"missing.{k}": v for k, v in sorted(self.missing.items())})
        return out


def build_training_set(repo_dir: str, entity_uri: str, output_uri: str,
                       config: TrainingSetConfig | dict[str, Any] | str | None = None) -> TrainingSetResult:
    """Join point-in-time features onto the entity table at ``entity_uri``; write Parquet to ``output_uri``."""
    cfg = TrainingSetConfig.parse(config)
    t0 = time.perf_counter()
    with opened_store(repo_dir) as store:
        refs, join_keys = resolve_features(store, cfg)
        entity_df = entity_frame(read_entities(entity_uri), join_keys, cfg)
        out, names = join_features(store, entity_df, refs, cfg.full_feature_names)
    out = out.sort(ROW_ID).drop(ROW_ID)
    if cfg.timestamp_column != FEAST_TS:
        out = out.rename({FEAST_TS: cfg.timestamp_column})
    missing = {n: int(out[n].null_count()) for n in names}
    any_missing = int(out.select(pl.any_horizontal(pl.col(names).is_null()).sum()).item())
    result = TrainingSetResult(rows=out.height, features=names, rows_with_missing=any_missing, missing=missing)
    if out.height and any_missing / out.height > cfg.max_missing_share:
        raise FeatureRepoError(f"{any_missing} of {out.height} rows miss a feature, above max_missing_share="
                               f"{cfg.max_missing_share}; per feature: {missing}")
    write_parquet(out.select(_ordered(out.columns, names)), output_uri)
    return TrainingSetResult(**{**asdict(result), "seconds": round(time.perf_counter() - t0, 3)})


def join_features(store: FeatureStore, entity_df: pl.DataFrame, refs: list[str],
                  full_names: bool) -> tuple[pl.DataFrame, list[str]]:
    """Left-join every view's point-in-time features onto ``entity_df``; every input row stays, in any order.

    Feast is asked once per feature view with distinct (join keys, timestamp) pairs, and its answer is joined
    back on those pairs: the file (Dask) offline store drops entity rows sharing a key and timestamp
    (feast-dev/feast#6787) and, when several views are requested, rows whose only candidates fall outside one
    view's TTL; a pair missing from the answer has no feature value in that view, i.e. nulls.
    """
    views = {v.name: v for v in store.registry.list_feature_views(store.project)}
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        by_view.setdefault(ref.split(":")[0], []).append(ref)
    out, names = entity_df, []
    for view, view_refs in by_view.items():
        fv = views[view]
        keys = [c.name for c in fv.entity_columns]
        cols = {r.split(":")[1]: (r.replace(":", "__") if full_names else r.split(":")[1]) for r in view_refs}
        clash = [c for c in cols.values() if c in out.columns]
        if clash:
            raise FeatureRepoError(f"feature column {clash[0]!r} of view {view!r} is already taken; "
                                   "set full_feature_names")
        pairs = entity_df.select(*keys, FEAST_TS).unique().with_row_index(PAIR_ID)
        got = pl.from_arrow(store.get_historical_features(
            entity_df=pairs.to_pandas(), features=view_refs, full_feature_names=full_names).to_arrow())
        assert isinstance(got, pl.DataFrame)
        got = got.select(PAIR_ID, *cols.values())
        if got[PAIR_ID].is_duplicated().any() or not got[PAIR_ID].is_in(pairs[PAIR_ID].implode()).all():
            raise FeatureRepoError(f"the offline store answered view {view!r} with unknown or repeated rows")
        types = {f.name: f.dtype for f in fv.features}
        got = got.with_columns(_typed(got[cols[f]], str(types[f])) for f in cols)
        answered = pairs.join(got, on=PAIR_ID, how="left").drop(PAIR_ID)
        out = out.join(answered, on=[*keys, FEAST_TS], how="left", nulls_equal=False)
        names += list(cols.values())
    if out.height != entity_df.height:
        raise FeatureRepoError(f"the join returned {out.height} rows for {entity_df.height} label rows")
    return out.with_columns(pl.col(FEAST_TS).dt.cast_time_unit("us")), names


def _typed(col: pl.Series, feast_type: str) -> pl.Series:
    """A Feast answer column with NaN-for-missing turned into nulls and the declared type restored."""
    if col.dtype.is_float():
        col = col.fill_nan(None)
    target = _POLARS.get(feast_type)
    return col.cast(target) if target is not None else col


def read_entities(uri: str) -> pl.DataFrame:
    """The entity table: CSV, Parquet or JSON lines by suffix; Parquet when the path has none (KFP artifacts)."""
    try:
        fmt = format_of(uri)
    except ArtifactError:
        fmt = "parquet"
    return read_table(uri, fmt)  # type: ignore[arg-type]


def _ordered(columns: list[str], features: list[str]) -> list[str]:
    return [c for c in columns if c not in features] + features


def resolve_features(store: FeatureStore, cfg: FeatureSelection) -> tuple[list[str], list[str]]:
    """Feature references (validated against the registry) and the join keys they need."""
    views = {v.name: v for v in store.registry.list_feature_views(store.project)}
    if cfg.feature_service:
        try:
            svc = store.get_feature_service(cfg.feature_service)
        except Exception:
            raise FeatureRepoError(f"feature service {cfg.feature_service!r} is not registered") from None
        refs = [f"{p.name}:{f.name}" for p in svc.feature_view_projections for f in p.features]
    elif cfg.features:
        refs = list(cfg.features)
    else:
        refs = [f"{v.name}:{f.name}" for v in sorted(views.values(), key=lambda v: v.name) for f in v.features]
    keys: list[str] = []
    for ref in refs:
        view, feat = ref.split(":")
        if view not in views:
            odfvs = {v.name for v in store.registry.list_on_demand_feature_views(store.project)}
            if view in odfvs:
                raise FeatureRepoError(f"feature view {view!r} is an on-demand feature view, which this component "
                                       "does not compute; select features of plain feature views")
            raise FeatureRepoError(f"feature view {view!r} is not registered (registered: {sorted(views)})")
        if feat not in {f.name for f in views[view].features}:
            raise FeatureRepoError(f"feature view {view!r} has no feature {feat!r}")
        keys += [c.name for c in views[view].entity_columns if c.name not in keys]
    if not refs:
        raise FeatureRepoError("no features to join")
    return refs, keys


def entity_frame(df: pl.DataFrame, join_keys: list[str], cfg: TrainingSetConfig) -> pl.DataFrame:
    """The entity frame Feast gets: join keys, UTC microsecond timestamps, carried columns and a row id."""
    for col, role in [*((k, "entity join key") for k in join_keys), (cfg.timestamp_column, "timestamp"),
                      *((c, "label") for c in cfg.label_columns)]:
        if col not in df.columns:
            raise FeatureRepoError(f"the entity table has no {role} column {col!r} (columns: {df.columns})")
    ts = df.schema[cfg.timestamp_column]
    if not isinstance(ts, pl.Datetime):
        raise FeatureRepoError(f"timestamp column {cfg.timestamp_column!r} is {ts}, expected a datetime")
    if FEAST_TS in cfg.label_columns or (FEAST_TS in join_keys and cfg.timestamp_column != FEAST_TS):
        raise FeatureRepoError(f"column {FEAST_TS!r} is reserved for the label time")
    for col in [*join_keys, cfg.timestamp_column]:
        nulls = df[col].null_count()
        if nulls:
            raise FeatureRepoError(f"column {col!r} of the entity table has {nulls} nulls")
    stamp = pl.col(cfg.timestamp_column)
    stamp = stamp.dt.replace_time_zone("UTC") if ts.time_zone is None else stamp.dt.convert_time_zone("UTC")
    return df.select(
        *join_keys, stamp.dt.cast_time_unit("us").alias(FEAST_TS),
        *[c for c in cfg.label_columns if c not in join_keys], pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW_ID))
