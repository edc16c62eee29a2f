"""Set translations in the English catalog: po_set.py 'msgid' 'msgstr' [...] (clears fuzzy)."""
import sys
from babel.messages.pofile import read_po, write_po
import os
p = os.path.join(os.path.dirname(__file__), '..', 'locale', 'en', 'LC_MESSAGES', 'messages.po')
with open(p, 'rb') as f:
    cat = read_po(f)
args = sys.argv[1:]
for mid, mstr in zip(args[::2], args[1::2]):
    m = cat.get(mid)
    assert m is not None, mid
    m.string = mstr
    m.flags.discard('fuzzy')
with open(p, 'wb') as f:
    write_po(f, cat, width=0, include_previous=False, sort_output=True)
