"""Running a transaction again when the database had to abort it (a PostgreSQL deadlock or
serialisation failure): the engine's writes, the public entry's code check and site check-in
all go through `retrying()`. A leaf: it imports nothing of the domain, so every layer may use it."""
from __future__ import annotations

import asyncio


def _is_retryable(exc: BaseException) -> bool:
    """A PostgreSQL deadlock or serialisation failure: the transaction can simply run again."""
    try:
        from asyncpg.exceptions import TransactionRollbackError
    except ImportError:  # pragma: no cover
        return False
    while exc is not None:
        if isinstance(exc, TransactionRollbackError):
            return True
        exc = exc.__cause__
    return False


async def retrying(transaction):
    """Run an async transaction function, again (up to 3 times) if the database had to abort it."""
    for attempt in range(3):
        try:
            return await transaction()
        except Exception as exc:
            if attempt == 2 or not _is_retryable(exc):
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
