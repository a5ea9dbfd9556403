"""Test helpers that ship with the package: a fake CoinGecko (REST and WebSocket) on 127.0.0.1.

See :mod:`cryptotech.testing.fake_coingecko`; run it by hand with
``python -m cryptotech.testing.fake_coingecko --port 8765``.
"""

from cryptotech.testing.fake_coingecko import FakeCoinGecko, FakeCoinGeckoStream, Fault

__all__ = ["FakeCoinGecko", "FakeCoinGeckoStream", "Fault"]
