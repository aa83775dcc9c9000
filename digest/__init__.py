"""digest: a daily research-paper digest emailer."""

__version__ = "0.1.0"
