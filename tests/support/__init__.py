"""Plain helpers shared by several test modules (no tests, no fixtures: fixtures live in the
nearest conftest.py). Test modules import from here, never from one another or from a conftest."""
