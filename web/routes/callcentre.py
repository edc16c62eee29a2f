"""The call-centre console (being written)."""
ROUTES: list = []
