"""Publishing: pushes to the Hugging Face Hub, the Space and champion/challenger retraining."""
