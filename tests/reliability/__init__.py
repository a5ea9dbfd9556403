"""The reliability suite (issue 7): faults injected, bad inputs tried, events lost, counted.

Seven scenarios, each against real parts (the fake CoinGecko on 127.0.0.1, real SQLite files,
a real uvicorn, the real ``cryptotech`` process killed and restarted):

1. :mod:`.upstream`: CoinGecko faults, each alone then mixed at random; rate and credits;
2. :mod:`.crashes`: SIGKILLs at random moments during a replay, restarts, final state;
3. :mod:`.storage`: corrupt/foreign checkpoints, missing folder, read-only file, full disk;
4. :mod:`.stream`: SSE reconnect churn with ``Last-Event-ID``, a stalled client, soak;
5. :mod:`.api_input`: schemathesis with every check, odd requests, a long CSV export;
6. :mod:`.shutdown`: SIGTERM with open streams while writing, final checkpoint, resume;
7. :mod:`.secret_key`: the planted API key is in no log line, response or database row.

Run it with ``python benchmarks/reliability.py [--short]``; ``tests/test_reliability.py`` runs
the short version under pytest (CI). See :mod:`.core` for the table and the JSON.
"""
