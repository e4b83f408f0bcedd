"""Embedded demo data: the generator, the real breast_cancer set and demo:// URIs."""

from __future__ import annotations

import polars as pl
import pytest

from components._core.config import ConfigError
from components.data.breast_cancer import breast_cancer_events
from components.data.events import EventsConfig, generate_events
from components.data.sources import is_demo, write_demo_source


def test_generator_is_seeded_and_has_a_learnable_label() -> None:
    a, b = generate_events(EventsConfig(rows=4000, seed=3)), generate_events(EventsConfig(rows=4000, seed=3))
    assert a.equals(b)
    assert not a.equals(generate_events(EventsConfig(rows=4000, seed=4)))
    rate = a.group_by("channel").agg(pl.col("label").mean()).sort("channel")
    assert 0.2 < a["label"].mean() < 0.8
    assert rate["label"].max() - rate["label"].min() > 0.03  # channel carries signal


def test_shift_moves_distributions() -> None:
    base, shifted = generate_events(EventsConfig(rows=5000)), generate_events(EventsConfig(rows=5000, shift=1.0))
    assert shifted["session_minutes"].mean() - base["session_minutes"].mean() > 2


def test_demo_uri_writes_csv_with_options(tmp_path) -> None:
    path = write_demo_source("demo://events?rows=123&seed=5&bad_share=0.1", tmp_path)
    df = pl.read_csv(path)
    assert df.height == 123 and is_demo("demo://events")
    assert pl.read_csv(write_demo_source("demo://breast_cancer", tmp_path / "bc")).height == 569
    with pytest.raises(ConfigError, match=r"EventsConfig\.rows"):
        write_demo_source("demo://events?rows=0", tmp_path)
    with pytest.raises(ConfigError, match=r"EventsConfig\.colour"):
        write_demo_source("demo://events?colour=1", tmp_path)
    with pytest.raises(ValueError, match="unknown demo data set 'nope'"):
        write_demo_source("demo://nope", tmp_path)


def test_breast_cancer_event_table_shape() -> None:
    df = breast_cancer_events()
    assert df.columns[:2] == ["entity_id", "event_timestamp"] and df.columns[-1] == "label"
    assert df.height == 569 and df["entity_id"].n_unique() == 569 and set(df["label"].unique()) == {0, 1}
