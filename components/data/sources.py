"""``demo://`` sources: embedded data sets written on demand so every pipeline runs with no external data.

- ``demo://events?rows=5000&bad_share=0.02&seed=7&shift=0`` (any ``EventsConfig`` field as a query key)
- ``demo://breast_cancer``

They are written as CSV, so ingestion exercises the same parsing path as user files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from components.data.breast_cancer import breast_cancer_events
from components.data.events import EventsConfig, generate_events

SCHEME = "demo://"
DATASETS = ("events", "breast_cancer")


def is_demo(uri: str) -> bool:
    """True for ``demo://`` URIs."""
    return uri.startswith(SCHEME)


def write_demo_source(uri: str, folder: str | Path) -> str:
    """Write the data set named by a ``demo://`` URI as CSV into ``folder``; return the file's path."""
    parts = urlsplit(uri)
    name, query = parts.netloc or parts.path.strip("/"), dict(parse_qsl(parts.query, strict_parsing=False))
    if name == "events":
        df = generate_events(EventsConfig.parse(query))
    elif name == "breast_cancer":
        if query:
            raise ValueError(f"demo://breast_cancer takes no options, got {sorted(query)}")
        df = breast_cancer_events()
    else:
        raise ValueError(f"unknown demo data set {name!r} in {uri!r}; available: {list(DATASETS)}")
    path = Path(folder) / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_csv(path)
    return str(path)
