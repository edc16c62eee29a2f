"""The database: tables, migrations, the SQLite backend and start-up."""
