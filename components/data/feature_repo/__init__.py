"""The demo Feast feature repository over the demo event table (``components.data.events``).

Apply it with ``source_paths={"events": <validated Parquet>}``; the placeholder path below is never read.
This file is not a definition file: ``feast apply`` skips ``__init__.py``.
"""
