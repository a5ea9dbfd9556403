"""One exception hierarchy for the whole package.

Third-party errors are converted into these where they enter (a source, the store, a
replayed file), so callers catch ``CryptoTechError`` and show its message to the user.
"""

from __future__ import annotations


class CryptoTechError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(CryptoTechError):
    """A setting has an invalid value. The message names the key."""


class ReplayError(CryptoTechError):
    """A replayed file cannot be read. The message names the file and line."""


class SourceError(CryptoTechError):
    """The price source failed in a way the poller cannot retry its way out of."""


class StoreError(CryptoTechError):
    """The SQLite store cannot be opened, read or written: every ``sqlite3`` error and every
    error serialising a payload (a NaN, a value JSON cannot encode) becomes this one, at one
    boundary (:func:`cryptotech.store.store_errors`)."""


class CheckpointError(StoreError):
    """A stored learner checkpoint cannot be restored (corrupt or another River version)."""
