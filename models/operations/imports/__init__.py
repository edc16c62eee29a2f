"""CSV imports of sites and first-dose records, streamed: a file of a million rows in flat memory.

A file is read twice, a line at a time, never whole:
1. the check pass reads it all once: UTF-8, well-formed CSV, the header's columns, the number of
   rows. A whole-file problem is reported here, before anything is written (as it always was).
2. the import pass checks each row (every reason, line numbers as in the file) and writes the
   good ones in batches of BATCH rows: one transaction a batch, holding the batch's rows, its
   refusals (ImportReject) and the run's counts (ImportRun), so the counts anyone sees always
   match what is written, and a crash leaves whole batches only. Importing again is the way to
   finish an interrupted run: a row already written counts as unchanged.
A source that cannot be read twice (a pipe, /dev/stdin) is first copied to a temporary file.

Memory: two batches of rows (one written while the next is checked), the first KEPT_ERRORS
refusals, SQLite's page cache (SQLITE_CACHE_KB while the import runs), and, to find an ID number
repeated in the file, 64 bits of each row's keyed hash with its line number (about 24 bytes a
row: 24 MB for a million rows); never an ID number itself.

One concept a module:
- csvfile.py: reading a CSV as Excel and WPS save it (group lists read theirs with it too);
- runs.py: the run (ImportRun) fed batch by batch, its counts and refusals; the console's lists;
- sites.py: the sites file's rules and writes;
- first_doses.py: a first-dose row's rules and the record it makes;
- pipeline.py: the first-dose import, its worker processes and its writes;
- the database's settings for the run (PRAGMAs) are models/db/tuning.py's.

The names below are what the console, the command line (run.py) and the tests call, so that
`from models.operations import imports` then `imports.import_first_doses(…)` reads as it always
did; anything else is imported from its module.
"""
from .csvfile import ImportFileError, safe_filename
from .pipeline import import_first_doses, start_first_dose_upload
from .runs import (FIRST_DOSES, SITES, ImportResult, RowError, find_run, recent_runs,
                   reject_rows, run_failure, start_run)
from .sites import import_sites

__all__ = [
    "FIRST_DOSES", "SITES", "ImportFileError", "ImportResult", "RowError", "find_run",
    "import_first_doses", "import_sites", "recent_runs", "reject_rows", "run_failure",
    "safe_filename", "start_first_dose_upload", "start_run",
]
