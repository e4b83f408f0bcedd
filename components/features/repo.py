"""A Feast feature repository as the catalog handles it: located (catalog name, folder or URI), copied to a
working folder (the source is never modified), parsed without leaking imports, validated with errors that name
the object, and opened as a ``FeatureStore`` from the store choice saved next to it."""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from components._core.artifacts import filesystem, is_local, local_path
from components.features.config import FeatureStoreConfig, render_feature_store_yaml, resolve_store_dict

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents

CATALOG_REPOS = {
    "demo": Path(__file__).resolve().parents[1] / "data" / "feature_repo",
    "breast_cancer": Path(__file__).resolve().parents[1] / "data" / "breast_cancer_repo",
}
STORE_FILE = "catalog_store.json"
# `feast apply` imports every .py file in the repository; only definitions may be imported.
FEASTIGNORE = ["state/", "**/test_*.py", "**/*_test.py", "**/conftest.py", "**/setup.py", "**/notebooks/"]
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", ".git", ".venv", STORE_FILE)


class FeatureRepoError(ValueError):
    """The feature repository is missing or invalid; the message names the file or object at fault."""


def copy_repo(repo: str, dest: Path) -> str:
    """Copy ``repo`` (a catalog name, a local folder or a ``gs://`` / ``s3://`` URI) into the empty ``dest``.

    Returns a description of the source. The repository's ``feature_store.yaml`` is copied too (apply reads it,
    then replaces it with the effective store's).
    """
    if repo in CATALOG_REPOS:
        src = CATALOG_REPOS[repo]
        shutil.copytree(src, dest, ignore=_SKIP, dirs_exist_ok=True)
        return f"catalog:{repo}"
    if is_local(repo):
        src = Path(local_path(repo))
        if not src.is_dir():
            known = ", ".join(sorted(CATALOG_REPOS))
            raise FeatureRepoError(f"feature repository {repo!r} is neither a folder nor a catalog name ({known})")
        shutil.copytree(src, dest, ignore=_SKIP, dirs_exist_ok=True)
        return str(src.resolve())
    fs, path = filesystem(repo)
    if not fs.isdir(path):
        raise FeatureRepoError(f"feature repository {repo!r} is not a folder")
    dest.mkdir(parents=True, exist_ok=True)
    fs.get(path.rstrip("/") + "/", str(dest), recursive=True)
    (dest / STORE_FILE).unlink(missing_ok=True)
    return repo


def write_store_files(repo_dir: Path, store: FeatureStoreConfig) -> None:
    """Write ``feature_store.yaml`` (secrets as ``${VAR}``) and the store choice."""
    (repo_dir / "feature_store.yaml").write_text(render_feature_store_yaml(store))
    (repo_dir / STORE_FILE).write_text(store.to_json() + "\n")


def write_feastignore(repo_dir: Path) -> None:
    """Add the catalog's patterns to the repository's ``.feastignore`` (only definitions may be imported)."""
    ignore = repo_dir / ".feastignore"
    existing = ignore.read_text().splitlines() if ignore.exists() else []
    lines = existing + [line for line in FEASTIGNORE if line not in existing]
    ignore.write_text("\n".join(lines) + "\n")


def store_config(repo_dir: str | Path) -> FeatureStoreConfig:
    """The store choice saved by apply in an applied repository folder."""
    path = Path(repo_dir) / STORE_FILE
    if not path.is_file():
        raise FeatureRepoError(f"{repo_dir} is not an applied feature repository (no {STORE_FILE}); run apply first")
    return FeatureStoreConfig.parse(path.read_text())


def open_store(repo_dir: str | Path, store: FeatureStoreConfig | None = None) -> FeatureStore:
    """A ``FeatureStore`` for an applied repository folder, with secrets resolved in memory only."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    root = Path(repo_dir).resolve()
    cfg = store or store_config(root)
    repo_config = RepoConfig(**resolve_store_dict(cfg))
    repo_config.repo_path = root
    return FeatureStore(repo_path=str(root), config=repo_config)


@contextmanager
def opened_store(repo_dir: str | Path, store: FeatureStoreConfig | None = None) -> Iterator[FeatureStore]:
    """:func:`open_store` whose connections (SQL registry pool, SQLite, Redis) are closed on exit."""
    fs = open_store(repo_dir, store)
    try:
        yield fs
    finally:
        close_store(fs)


def close_store(fs: FeatureStore) -> None:
    """Close what Feast keeps open and offers no synchronous close for (best effort)."""
    registry = getattr(fs, "_registry", None)
    for name in ("write_engine", "read_engine"):
        engine = getattr(registry, name, None)
        if engine is not None:
            engine.dispose()
    online = getattr(getattr(fs, "_provider", None), "_online_store", None)
    for name in ("_conn", "_client"):
        handle = getattr(online, name, None)
        if handle is not None:
            handle.close()
            setattr(online, name, None)


@contextmanager
def _importing(repo_dir: Path) -> Iterator[None]:
    """Import context for the repository: cwd and ``sys.path`` at its root, its modules forgotten afterwards."""
    before = set(sys.modules)
    cwd, dont_write = os.getcwd(), sys.dont_write_bytecode
    sys.path.insert(0, str(repo_dir))
    os.chdir(repo_dir)
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.dont_write_bytecode = dont_write
        sys.path.remove(str(repo_dir))
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin.startswith(str(repo_dir)):
                del sys.modules[name]


def parse_definitions(repo_dir: Path) -> RepoContents:
    """Import the repository's definition files (``.feastignore`` honoured) and collect its Feast objects."""
    from feast.repo_operations import parse_repo

    root = repo_dir.resolve()
    with _importing(root):
        try:
            return parse_repo(root)
        except Exception as err:
            frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith(str(root))]
            where = f"{Path(frames[-1].filename).relative_to(root)}:{frames[-1].lineno}: " if frames else ""
            raise FeatureRepoError(f"invalid feature repository definition: {where}{type(err).__name__}: {err}") \
                from err
