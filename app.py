"""Hugging Face Space / local entry point: serve MODEL_ID (or the newest model under models/, or the model
README.md's Space card lists under models:) with the Gradio UI.

Environment: MODEL_ID (model folder or Hub id), MODEL_REVISION, GRADIO_SERVER_NAME, GRADIO_SERVER_PORT,
FEEDBACK_FILE, FEEDBACK_REPO, CANARY_FILE, SERVE_CONFIG, ALLOWED_ORIGINS;
options --config/--set (serve: and inference:).
Everything else is in tweet_classifier.serving (server.py runs it).
"""

import sys

from tweet_classifier.serving.server import main

if __name__ == "__main__":
    sys.exit(main())
