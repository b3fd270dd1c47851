"""Inference on a model folder: backends, the Predictor, export and its parity gate, bulk scoring."""
