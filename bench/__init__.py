"""The SMS-rush benchmark (`make bench`, `python -m bench --help`; figures in bench/RESULTS.md):
a district-sized data set (dataset.py), `run.py serve` as the server under test and `check`
after (server.py), residents who just got their SMS playing the no-JS journey (load.py), the
runner that ties them together (runner.py) and its one JSON line (report.py). bench/imports.py,
the import measurement, stands apart."""
