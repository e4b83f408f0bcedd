"""Apply: register a feature repository's definitions in the configured registry and create online tables.

The repository is copied into the output folder (the applied repository artifact); the source is never touched.
The store is the component's store config over the repository's own ``feature_store.yaml`` (``store_yaml``); the
project is, in this order, the store config's explicit ``project`` (a Project object in the definitions is renamed
to it), the ``feature_store.yaml``'s, the definitions' Project object's, else ``catalog``. The output appears only
when every check and the registration succeeded.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from components._core.artifacts import atomic_target, is_local, local_path
from components._core.config import StrictConfig
from components.features.checks import check_definitions, override_sources
from components.features.config import FeatureStoreConfig
from components.features.repo import (
    FeatureRepoError,
    copy_repo,
    opened_store,
    parse_definitions,
    write_feastignore,
    write_store_files,
)
from components.features.store_yaml import FILE, effective_store, read_store_yaml

if TYPE_CHECKING:
    from feast.repo_contents import RepoContents


class ApplyConfig(StrictConfig):
    """What to register and where."""

    store: FeatureStoreConfig = Field(default_factory=FeatureStoreConfig, description="store choices")
    source_paths: dict[str, str] = Field(
        default_factory=dict, max_length=100,
        description="data source name -> Parquet file/folder path or URI replacing the repository's own path; "
                    "sources not named keep their own")

    @field_validator("source_paths")
    @classmethod
    def _non_empty(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k, p in v.items() if not k or not p.strip()]
        if bad:
            raise ValueError(f"empty name or path for data source {bad[0]!r}")
        return v


@dataclass(frozen=True)
class ApplyResult:
    """What was registered."""

    repo_dir: str
    source: str
    project: str
    entities: list[str]
    feature_views: list[str]
    data_sources: list[str]
    feature_services: list[str]
    online: str
    offline: str
    registry: str
    seconds: float

    @property
    def registered_views(self) -> str:
        """The registered feature views, comma-separated (the apply wrapper's return value)."""
        return ",".join(self.feature_views)

    def to_metadata(self) -> dict[str, Any]:
        """Flat metadata for the output artifact (lists joined by commas)."""
        return {k: ",".join(v) if isinstance(v, list) else v for k, v in asdict(self).items()}


def _register(store: Any, contents: Any, project: str) -> None:
    """Validate the sources with the provider, then apply (and delete what the repository no longer defines)."""
    from feast.repo_operations import extract_objects_for_apply_delete

    provider = store._get_provider()
    for fv in contents.feature_views:
        if fv.batch_source is None:
            raise FeatureRepoError(f"feature view {fv.name!r} has no batch source")
        try:
            provider.validate_data_source(store.config, fv.batch_source)
        except Exception as err:
            raise FeatureRepoError(f"feature view {fv.name!r}: {type(err).__name__}: {err}") from None
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(project, store.registry, contents)
    try:
        store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    except Exception as err:
        raise FeatureRepoError(f"feast apply failed: {type(err).__name__}: {err}") from err


def apply_repo(repo: str, output_dir: str, config: ApplyConfig | dict[str, Any] | str | None = None) -> ApplyResult:
    """Copy ``repo`` (catalog name, folder or URI) to ``output_dir``, check and register its definitions."""
    cfg = ApplyConfig.parse(config)
    if not is_local(output_dir):
        raise FeatureRepoError(f"output_dir must be a local folder (Feast imports the definitions): {output_dir}")
    t0 = time.perf_counter()
    with atomic_target(local_path(output_dir)) as tmp:
        work = Path(tmp)
        source = copy_repo(repo, work)
        raw = read_store_yaml(work)
        write_feastignore(work)
        contents = parse_definitions(work)
        store = with_project(effective_store(cfg.store, raw), contents,
                             explicit="project" in cfg.store.model_fields_set, from_yaml=bool(raw and "project" in raw))
        write_store_files(work, store)
        override_sources(contents, cfg.source_paths)
        check_definitions(contents, work, store.offline)
        with opened_store(work, store) as fs:
            _register(fs, contents, store.project)
    real = [e.name for e in contents.entities if e.name != "__dummy"]
    return ApplyResult(
        repo_dir=str(Path(local_path(output_dir)).resolve()), source=source, project=store.project,
        entities=sorted(real), feature_views=sorted(v.name for v in contents.feature_views),
        data_sources=sorted(d.name for d in contents.data_sources),
        feature_services=sorted(s.name for s in contents.feature_services),
        online=store.online, offline=store.offline, registry=store.registry,
        seconds=round(time.perf_counter() - t0, 3))


def with_project(store: FeatureStoreConfig, contents: RepoContents, explicit: bool,
                 from_yaml: bool) -> FeatureStoreConfig:
    """``store`` with the effective project (see the module docstring); ``contents`` gets one Project object."""
    from feast import Project

    names = sorted({p.name for p in contents.projects})
    if len(names) > 1:
        raise FeatureRepoError(f"the repository defines more than one project: {names}")
    if names and not explicit:
        if from_yaml and names[0] != store.project:
            raise FeatureRepoError(f"the repository defines project {names[0]!r} but its {FILE} says "
                                   f"{store.project!r}")
        store = FeatureStoreConfig.parse({**store.model_dump(), "project": names[0]})
    if not names:
        contents.projects.append(Project(name=store.project))
    for project in contents.projects:
        project.name = store.project
    return store
