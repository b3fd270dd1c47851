"""tweet-classifier: clean noisy tweets, fine-tune a small transformer, serve it with live metrics."""

__version__ = "0.1.0"
