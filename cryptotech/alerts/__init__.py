"""Alerts: rules evaluated on every tick, committed with it, delivered from an outbox.

* :mod:`.rules`: the rules users write (``[[alertas]]`` in config.toml, ``/alertas/regras``);
* :mod:`.evaluate`: market rules on event time, in the tick's transaction;
* :mod:`.deliver`: the outbox drained through apprise with retries and backoff;
* :mod:`.service`: the engine's :class:`~cryptotech.alerts.service.Alerts` and its tasks;
* :mod:`.replay`: ``cryptotech backtest --alertas``: how often each rule would have fired.

Kept light on import (``cryptotech.config`` imports :mod:`.rules`).
"""
