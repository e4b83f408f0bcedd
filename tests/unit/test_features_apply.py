"""Apply: working copy (source untouched), .feastignore, invalid definitions failing by name, nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from components.features.apply import apply_repo
from components.features.materialize import materialize
from components.features.repo import CATALOG_REPOS, FeatureRepoError, opened_store, store_config
from tests.unit.test_features_suite import DAY, T0, online_values, three_versions

DEMO = (CATALOG_REPOS["demo"] / "features.py").read_text()


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("data") / "events.parquet"
    three_versions(range(1, 4)).write_parquet(path)
    return str(path)


def user_repo(tmp_path: Path, text: str, extra: dict[str, str] | None = None) -> Path:
    repo = tmp_path / "user_repo"
    repo.mkdir()
    (repo / "features.py").write_text(text)
    for name, body in (extra or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(body)
    return repo


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_demo_applies_into_a_working_copy_and_leaves_the_catalog_untouched(tmp_path: Path, events: str) -> None:
    before = digest(CATALOG_REPOS["demo"])
    result = apply_repo("demo", str(tmp_path / "applied"), {"source_paths": {"events": events}})
    assert digest(CATALOG_REPOS["demo"]) == before
    assert result.feature_views == ["activity", "profile"] and result.entities == ["entity"]
    assert result.to_metadata()["feature_views"] == "activity,profile" and result.source == "catalog:demo"
    applied = tmp_path / "applied"
    assert {p.name for p in applied.iterdir()} >= {"features.py", "feature_store.yaml", ".feastignore", "state"}
    assert "state/" in (applied / ".feastignore").read_text()
    with opened_store(applied) as store:
        assert store.get_data_source("events").path == events  # type: ignore[attr-defined]
        assert sorted(v.name for v in store.list_feature_views()) == ["activity", "profile"]
    assert store_config(applied).online == "sqlite"
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_user_folder_applies_and_feastignore_keeps_helpers_out(tmp_path: Path, events: str) -> None:
    boom = "raise RuntimeError('imported a file feast apply must skip')\n"
    repo = user_repo(tmp_path, DEMO, {"test_features.py": boom, "notebooks/explore.py": boom,
                                      "feature_store.yaml": "project: theirs\n"})
    before = digest(repo)
    result = apply_repo(str(repo), str(tmp_path / "out"), {"source_paths": {"events": events}})
    assert result.feature_views == ["activity", "profile"] and digest(repo) == before
    assert "project: theirs" in (tmp_path / "out" / "feature_store.yaml").read_text()  # the repository's project


def test_relative_file_source_resolves_inside_the_repository(tmp_path: Path, events: str) -> None:
    repo = user_repo(tmp_path, DEMO)
    (repo / "data").mkdir()
    (repo / "data" / "events.parquet").write_bytes(Path(events).read_bytes())
    assert apply_repo(str(repo), str(tmp_path / "out")).feature_views == ["activity", "profile"]


@pytest.mark.parametrize("edit,message", [
    (("entities=[entity],\n    ttl=timedelta(days=14)",
      "entities=[Entity(name='ghost', join_keys=['entity_id'])],\n    ttl=timedelta(days=14)"),
     "feature view 'activity' uses entity 'ghost', which is not defined"),
    (('Field(name="n_items", dtype=Int64)', 'Field(name="n_itemz", dtype=Int64)'),
     r"feature view 'activity' .*column 'n_itemz' is missing"),
    (('Field(name="country", dtype=String)', 'Field(name="country", dtype=Float64)'),
     "feature view 'profile' .*feature 'country' is declared Float64 but the column is String"),
    (('timestamp_field="event_timestamp"', 'timestamp_field="label"'),
     "timestamp field 'label' must be a datetime column"),
    (('name="profile"', 'name="activity"'), "feature view 'activity' is defined more than once"),
    (("ttl=timedelta(days=90),", "ttl=timedelta(days=90), bogus_arg=1,"),
     r"features\.py:\d+: TypeError"),
])
def test_invalid_definitions_fail_naming_the_object_and_write_nothing(
        tmp_path: Path, events: str, edit: tuple[str, str], message: str) -> None:
    assert edit[0] in DEMO
    repo = user_repo(tmp_path, DEMO.replace(edit[0], edit[1], 1))
    with pytest.raises(FeatureRepoError, match=message):
        apply_repo(str(repo), str(tmp_path / "out"), {"source_paths": {"events": events}})
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".tmp-*"))


def test_bad_sources_and_locations_fail_clearly(tmp_path: Path, events: str) -> None:
    with pytest.raises(FeatureRepoError, match="data source 'evnts', which the repository does not define"):
        apply_repo("demo", str(tmp_path / "a"), {"source_paths": {"evnts": events}})
    with pytest.raises(FeatureRepoError, match=r"data source 'events' cannot be read .*source_paths"):
        apply_repo("demo", str(tmp_path / "b"))
    with pytest.raises(FeatureRepoError, match="neither a folder nor a catalog name"):
        apply_repo(str(tmp_path / "absent"), str(tmp_path / "c"))
    assert not any((tmp_path / n).exists() for n in "abc")


def test_reapply_keeps_registered_views_in_step_with_the_repository(tmp_path: Path, events: str) -> None:
    state = tmp_path / "shared_state"
    cfg = {"store": {"state_dir": str(state)}, "source_paths": {"events": events}}
    apply_repo("demo", str(tmp_path / "v1"), cfg)
    only_activity = DEMO[:DEMO.index("profile = FeatureView(")]
    apply_repo(str(user_repo(tmp_path, only_activity)), str(tmp_path / "v2"), cfg)
    with opened_store(tmp_path / "v2") as store:
        assert [v.name for v in store.list_feature_views()] == ["activity"]


def test_parquet_folder_source(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    data = three_versions(range(1, 5))
    data.head(6).write_parquet(folder / "part-0.parquet")
    data.tail(-6).write_parquet(folder / "part-1.parquet")
    apply_repo("demo", str(tmp_path / "out"), {"source_paths": {"events": str(folder)}})
    report = materialize(str(tmp_path / "out"), None, {"start": T0, "end": T0 + 3 * DAY})
    assert report.entities == 4 and pl.read_parquet(folder).height == 12
    assert online_values(str(tmp_path / "out"), [1, 4])["amount"] == [102.0, 402.0]


def test_overridden_source_without_format_reads_as_parquet_on_duckdb(tmp_path: Path, events: str) -> None:
    line = "    file_format=ParquetFormat(),  # explicit: artifact paths carry no .parquet suffix\n"
    assert line in DEMO
    repo = user_repo(tmp_path, DEMO.replace(line, ""))
    artifact = tmp_path / "valid"  # no suffix, like a KFP artifact path
    artifact.write_bytes(Path(events).read_bytes())
    apply_repo(str(repo), str(tmp_path / "out"), {"store": {"offline": "duckdb"},
                                                  "source_paths": {"events": str(artifact)}})
    report = materialize(str(tmp_path / "out"), None, {"start": T0, "end": T0 + 3 * DAY})
    assert report.entities == 3 and report.rows == 6


def test_nanosecond_timestamps_are_refused_for_duckdb_only(tmp_path: Path) -> None:
    path = tmp_path / "ns.parquet"
    three_versions(range(1, 3)).with_columns(pl.col("event_timestamp").dt.cast_time_unit("ns")).write_parquet(path)
    with pytest.raises(FeatureRepoError, match=r"column 'event_timestamp' is Datetime\(time_unit='ns'.*microsecond"):
        apply_repo("demo", str(tmp_path / "duck"),
                   {"store": {"offline": "duckdb"}, "source_paths": {"events": str(path)}})
    assert not (tmp_path / "duck").exists()
    apply_repo("demo", str(tmp_path / "file"), {"source_paths": {"events": str(path)}})
    assert materialize(str(tmp_path / "file"), None, {"start": T0, "end": T0 + 3 * DAY}).rows == 4


def test_repository_from_a_uri_is_copied(tmp_path: Path, events: str) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe({"/remote_repo/features.py": DEMO.encode(), "/remote_repo/feature_store.yaml": b"project: x\n",
             "/remote_repo/sub/test_skip.py": b"raise RuntimeError('must be ignored')\n"})
    try:
        result = apply_repo("memory://remote_repo", str(tmp_path / "out"), {"source_paths": {"events": events}})
    finally:
        fs.rm("/remote_repo", recursive=True)
    assert result.source == "memory://remote_repo" and result.feature_views == ["activity", "profile"]
    assert (tmp_path / "out" / "features.py").read_text() == DEMO
    assert result.project == "x" and "project: x" in (tmp_path / "out" / "feature_store.yaml").read_text()


@pytest.mark.parametrize("name", sorted(CATALOG_REPOS))
def test_every_catalog_repository_fits_its_data(tmp_path: Path, name: str) -> None:
    from components.data.breast_cancer import breast_cancer_events
    from components.data.events import EventsConfig, generate_events
    from components.features.training_set import build_training_set

    data = breast_cancer_events() if name == "breast_cancer" else generate_events(EventsConfig(rows=300, entities=40))
    valid = tmp_path / "valid"
    data.write_parquet(valid)
    out = str(tmp_path / name)
    result = apply_repo(name, out, {"source_paths": {"events": str(valid)}})
    assert result.feature_services == ["training"]
    assert materialize(out, None, {"mode": "incremental", "end": "2100-01-01"}).entities == data["entity_id"].n_unique()
    ts = build_training_set(out, str(valid), str(tmp_path / "train"), {"feature_service": "training"})
    assert ts.rows == data.height and ts.rows_with_missing == 0
