"""Demo and reference data sets shaped as event tables (entity id, event timestamp, features, label)."""
