"""Messaging: what each SMS says, the outbox it waits in, and its delivery."""
