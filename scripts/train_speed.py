"""Training samples/s: fp32 padded to 128 tokens vs dynamic padding, fused AdamW and bf16 autocast.

    .venv/bin/python scripts/train_speed.py --config configs/airline.yaml [--batches 6] [--set train.batch_size=32]

The logic lives in tweet_classifier.training.speed (measure_training_speed); this file only calls it.
"""

import sys

from tweet_classifier.training.speed import speed_main

if __name__ == "__main__":
    sys.exit(speed_main())
