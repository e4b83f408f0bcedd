"""Shared runtime: strict config, artifact I/O, backend registry, the waiter."""

from __future__ import annotations

import polars as pl
import pytest
from pydantic import Field

from components._core import artifacts
from components._core.config import ConfigError, StrictConfig
from components._core.waiting import Clock, DeadlineExceeded, wait_for


class Demo(StrictConfig):
    rows: int = Field(10, ge=1, le=100, description="rows")
    name: str = Field("x", description="name")


def test_config_rejects_unknown_and_out_of_range_fields_by_name() -> None:
    with pytest.raises(ConfigError, match=r"Demo\.rows: .*less than or equal to 100.*\(got 500\)"):
        Demo.parse({"rows": 500})
    with pytest.raises(ConfigError, match=r"Demo\.colour: Extra inputs are not permitted"):
        Demo.parse('{"colour": "red"}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        Demo.parse("{rows: 1")


def test_config_parses_json_dict_and_empty_and_serializes_canonically() -> None:
    assert Demo.parse("").rows == 10
    assert Demo.parse({"rows": 3}) == Demo.parse('{"rows": 3}')
    assert Demo.parse({"name": "b", "rows": 2}).to_json() == '{"name":"b","rows":2}'
    with pytest.raises(Exception, match=r"frozen"):
        Demo().rows = 3  # type: ignore[misc]


def test_write_parquet_is_atomic_on_failure(tmp_path) -> None:
    target = tmp_path / "out" / "data.parquet"
    artifacts.write_parquet(pl.DataFrame({"a": [1, 2]}), str(target))
    bad = pl.LazyFrame({"a": ["x"]}).select(pl.col("a").cast(pl.Int64, strict=True))
    with pytest.raises(pl.exceptions.PolarsError):
        artifacts.write_parquet(bad, str(target))
    assert pl.read_parquet(target)["a"].to_list() == [1, 2]  # old content intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.parquet"]  # no temp left behind


def test_data_files_and_read_table_file_folder_and_errors(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    pl.DataFrame({"a": [1]}).write_csv(folder / "p1.csv")
    pl.DataFrame({"a": [2]}).write_csv(folder / "p2.csv")
    (folder / "_SUCCESS").write_text("")
    files, fmt = artifacts.data_files(str(folder))
    assert fmt == "csv" and [f.rsplit("/", 1)[-1] for f in files] == ["p1.csv", "p2.csv"]
    assert artifacts.read_table(str(folder))["a"].to_list() == [1, 2]
    with pytest.raises(artifacts.ArtifactError, match="source not found"):
        artifacts.data_files(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(artifacts.ArtifactError, match="holds no data files"):
        artifacts.data_files(str(tmp_path / "empty"))
    pl.DataFrame({"a": [3]}).write_parquet(folder / "p3.parquet")
    with pytest.raises(artifacts.ArtifactError, match="mixes formats"):
        artifacts.data_files(str(folder))
    (tmp_path / "x.txt").write_text("a\n1\n")
    with pytest.raises(artifacts.ArtifactError, match="cannot infer the format"):
        artifacts.data_files(str(tmp_path / "x.txt"))
    pl.DataFrame({"a": [7]}).write_parquet(tmp_path / "artifact")  # KFP artifact paths have no suffix
    assert artifacts.read_table(str(tmp_path / "artifact"))["a"].to_list() == [7]
    (tmp_path / "noext").write_text("a\n1\n")
    with pytest.raises(artifacts.ArtifactError, match="cannot infer the format"):
        artifacts.data_files(str(tmp_path / "noext"))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(artifacts.ArtifactError, match=r"broken\.parquet"):
        artifacts.read_table(str(tmp_path / "broken.parquet"))


def test_remote_uris_go_through_fsspec() -> None:
    uri = "memory://bucket/tables/t.parquet"
    artifacts.write_parquet(pl.DataFrame({"a": [1, 2, 3]}), uri)
    assert artifacts.parquet_rows(uri) == 3
    assert artifacts.read_table("memory://bucket/tables")["a"].sum() == 6
    artifacts.write_json({"b": 1, "a": [1]}, "memory://bucket/r.json")
    assert artifacts.read_json("memory://bucket/r.json") == {"a": [1], "b": 1}


def test_wait_for_returns_terminal_state_and_honours_deadline() -> None:
    now = [0.0]
    clock = Clock(now=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    states = iter(["Created", "Running", "Succeeded"])
    seen: list[str] = []
    assert wait_for(lambda: next(states), lambda s: s == "Succeeded", timeout_s=60, interval_s=5,
                    on_poll=seen.append, clock=clock) == "Succeeded"
    assert seen == ["Created", "Running", "Succeeded"] and now[0] == 10
    with pytest.raises(DeadlineExceeded, match="job not finished after 30s; last state: Running"):
        wait_for(lambda: "Running", lambda s: False, timeout_s=30, interval_s=7, what="job", clock=clock)


def test_config_errors_never_echo_a_value_given_to_a_secret_like_field() -> None:
    from pydantic import Field

    from components._core.config import ConfigError, StrictConfig

    class Store(StrictConfig):
        redis_password: int = Field(0)
        size: int = Field(0)

    with pytest.raises(ConfigError) as err:
        Store.parse({"redis_password": "hunter2", "size": "big"})
    assert "hunter2" not in str(err.value) and "value not shown" in str(err.value)
    assert "'big'" in str(err.value)  # other fields still show what was given


def test_sigterm_cleans_up_once_and_still_stops_the_step_if_the_first_exception_was_lost() -> None:
    import contextlib
    import os
    import signal

    from components._core.signals import Terminated, on_sigterm

    cleanups: list[int] = []
    with pytest.raises(Terminated), on_sigterm(lambda: cleanups.append(1)):
        with contextlib.suppress(Terminated):  # as when Python drops it inside a finalizer or weakref callback
            os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
    assert cleanups == [1]
