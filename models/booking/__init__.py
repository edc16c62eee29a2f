"""Booking: the engine that takes places, what is free, and the service every channel books through."""
