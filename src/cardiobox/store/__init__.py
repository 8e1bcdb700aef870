"""Site store: one DuckDB file per hospital site."""
