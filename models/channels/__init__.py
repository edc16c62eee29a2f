"""The ways in: each takes a person to the booking service (models/booking/service.py) its own way.

entry (the public entry: a phone number and its SMS code, or a booking code) · handoff (the city
health platform's signed hand-off) · agents (the call centre's and clinics' console: which channel
a booking there records) · groups/ (a residents' committee's list) · wechat (the official
account's replies). The SMS link's journey needs nothing here: it is the booking service's own.
The channels' names, as stored on each booking, are models/channel.py's `Channel`.
"""
