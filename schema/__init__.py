"""Lectr data contracts: tables, migrations, reference data, shared message formats."""
