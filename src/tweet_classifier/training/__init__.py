"""The training stage: baseline, fine-tuning, evaluation, calibration, tracking and the model card."""
