# syntax=docker/dockerfile:1.7
# Self-hosted image of the tweet-classifier app (the same app the Space runs).
#   docker build -t tweet-classifier --build-arg MODEL_ID=org/name --build-arg MODEL_REVISION=<commit sha> .
#   docker run --rm -p 7860:7860 tweet-classifier
# Without MODEL_ID at build time, pass it at start: docker run -e MODEL_ID=org/name -p 7860:7860 tweet-classifier
FROM python:3.11.7-slim-bookworm

# CPU wheels of torch: the default PyPI wheel for Linux bundles CUDA libraries (several GB).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG MODEL_ID=""
ARG MODEL_REVISION="main"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/home/user/.cache/huggingface \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    MODEL_ID=${MODEL_ID} \
    MODEL_REVISION=${MODEL_REVISION}

# uid 1000: the user Hugging Face Spaces run as; it owns the app and a writable HF cache.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# Dependencies before the source, so editing code does not reinstall them; torch (the CPU build, the one
# package from TORCH_INDEX_URL) in a layer of its own, so moving another pin does not fetch it again. Both
# locks pin every file by sha256 (`make lock`): pip refuses anything else.
COPY --chown=user:user requirements-torch.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps --extra-index-url "${TORCH_INDEX_URL}" \
    -r requirements-torch.lock
COPY --chown=user:user requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY --chown=user:user pyproject.toml README.md app.py ./
COPY --chown=user:user src/ src/
COPY --chown=user:user configs/ configs/
RUN pip install --no-cache-dir --no-deps .

USER 1000
# Bake the model in when MODEL_ID is given. A private model needs `--secret id=hf_token,env=HF_TOKEN`:
# the token is mounted for this one step and is never written to a layer.
RUN --mount=type=secret,id=hf_token,uid=1000 \
    if [ -n "${MODEL_ID}" ]; then \
      if [ -f /run/secrets/hf_token ]; then HF_TOKEN="$(cat /run/secrets/hf_token)"; export HF_TOKEN; fi; \
      hf download "${MODEL_ID}" --revision "${MODEL_REVISION}"; \
    fi

EXPOSE 7860
# The app finishes in-flight requests on SIGTERM before it exits (see serve.py).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GRADIO_SERVER_PORT', '7860') + '/healthz', timeout=4)"]
CMD ["python", "app.py"]
