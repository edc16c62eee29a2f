"""Uploading the first-dose CSV: progress that updates itself, counts, the rejected rows as CSV."""
from __future__ import annotations

UPLOAD_PATH = "/admin/imports/upload"
UPLOADS = {UPLOAD_PATH: 512 * 1024 * 1024}  # a million first-dose rows are about 100 MB

ROUTES: list = []
