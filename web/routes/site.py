"""Site check-in (being written)."""
ROUTES: list = []
