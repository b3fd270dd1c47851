"""The data stage: load, validate, clean, split and report a dataset (`tweet-classifier data`)."""
