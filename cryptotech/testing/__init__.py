"""Test helpers that ship with the package: a fake CoinGecko (REST and WebSocket) on 127.0.0.1.

See :mod:`cryptotech.testing.fake_coingecko` (``FakeCoinGecko``, ``FakeCoinGeckoStream``);
run it by hand with ``python -m cryptotech.testing.fake_coingecko --port 8765``. Nothing is
imported here, so that ``python -m`` runs the module without a double import.
"""
