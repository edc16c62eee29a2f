"""The domain: tables and the operations that change them, one folder per part of the domain.

db/ (tables, migrations, start-up) · rules/ (interval, eligibility, refusals, the district's
facts) · people/ (personal data, residents, links, look-up) · booking/ (the engine, availability,
the booking service every channel calls) · staff/ (accounts, sessions, audit) · messaging/
(SMS wording, outbox, delivery) · operations/ (imports, invitations, slots, check-in, checks) ·
demo/. `district.District` holds what they share: the rule book, the keys, the clock.
"""
