"""The domain: tables and the operations that change them, one folder per part of the domain.

The parts are layers: a module imports its own layer and those below it, never one above
(tests/test_layers.py: LAYERS states the order and fails on an import that runs up). Bottom to top:

1. Leaves anyone may import, which import nothing of the domain: clock, tokens, csv_safe,
   booking_codes, retry (a transaction run again after a deadlock), metrics (the counters),
   channel (the `Channel` names stored on each booking).
2. rules/ (interval, eligibility and refusals, the district's facts, the guide's numbers): what
   is decided, before anything is stored.
3. db/ (tables, migrations, start-up): where it is stored.
4. staff/ (accounts, sessions, audit, whom an account serves).
5. people/ (personal data, residents, links, look-up, scoped by staff's areas).
6. messaging/ (SMS wording, outbox, delivery, the per-number caps).
7. district.py: `District` bundles what the parts below make (the rule book, the keys, the SMS
   caps, the clock), and every part above is handed one.
8. booking/ (the engine, availability, the booking service every channel calls).
9. operations/ (imports, invitations, slots, check-in, reports, backups: what operators run).
10. channels/ (the ways in, each to the booking service: the public entry, the hand-off, the
    agents' console, group lists, WeChat; a group list reads its CSV as the imports do).
11. demo/.
"""
