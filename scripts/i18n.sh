#!/bin/sh
# Refresh the translation catalog: extract every message from templates/, web/ and models/
# into locale/messages.pot, then merge it into the one catalog we maintain,
# locale/en/LC_MESSAGES/messages.po (created on first run). Message ids are the Chinese text.
#
#   sh scripts/i18n.sh      then translate the new/fuzzy entries in the .po
#                           and run: .venv/bin/pytest tests/test_i18n.py
#
# Idempotent: when no message changed, neither file is rewritten (POT-Creation-Date is ignored).
# Strings that disappear from the sources are dropped from the .po (git keeps the history);
# a changed string comes back marked fuzzy with its old translation, for review.
set -eu
cd "$(dirname "$0")/.."

PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
[ -x "$PYBABEL" ] || PYBABEL=pybabel
POT=locale/messages.pot
PO=locale/en/LC_MESSAGES/messages.po

tmp=$(mktemp "${TMPDIR:-/tmp}/messages.XXXXXX.pot")
trap 'rm -f "$tmp"' EXIT

"$PYBABEL" -q extract -F babel.cfg -o "$tmp" \
    -k _ -k gettext -k ngettext:1,2 \
    --add-comments=Translators: --strip-comment-tags \
    --add-location=file --sort-output --no-wrap \
    --project="Tianhe second-dose booking" --copyright-holder="Tianhe District" \
    --version=1 \
    .

# Keep the old .pot (and its date) when only POT-Creation-Date differs.
if [ -f "$POT" ] && [ "$(grep -v '^"POT-Creation-Date:' "$POT")" = "$(grep -v '^"POT-Creation-Date:' "$tmp")" ]; then
    echo "$POT: no change"
else
    cat "$tmp" > "$POT"
    echo "$POT: updated"
fi

if [ -f "$PO" ]; then
    "$PYBABEL" -q update -i "$POT" -o "$PO" -l en_GB \
        --no-wrap --ignore-obsolete --ignore-pot-creation-date
else
    "$PYBABEL" -q init -i "$POT" -o "$PO" -l en_GB --no-wrap
fi

# What is left to do, if anything.
"${PYTHON:-.venv/bin/python}" - "$PO" <<'PY'
import sys
from babel.messages.pofile import read_po

with open(sys.argv[1], "rb") as f:
    catalog = read_po(f)
todo = [m for m in catalog if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))]
total = sum(1 for m in catalog if m.id)
print(f"{sys.argv[1]}: {total} messages, {len(todo)} to translate or review")
for m in todo:
    print("  ", "[fuzzy]" if m.fuzzy else "[new]  ", m.id if isinstance(m.id, str) else m.id[0])
PY
