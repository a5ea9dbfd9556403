"""CryptoTech: live crypto prices with honest, online-learned forecasts."""

__version__ = "0.1.0"
