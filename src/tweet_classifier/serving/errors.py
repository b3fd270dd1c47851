"""What a request can be told when it fails: the service's errors and the messages every route shares.

Every front end (the Gradio UI, the Gradio API, ``/v1``) answers with these, so a client sees the same
words whichever way it came. The HTTP status of each error is on its class.
"""

from __future__ import annotations

from tweet_classifier.errors import TweetClassifierError

INTERNAL_ERROR_MESSAGE = "Internal error while handling this request; it was logged as {error_id}. Please retry."
# "Busy" is one answer on every route: HTTP 503, Retry-After, {"error": BUSY_MESSAGE} (Gradio's
# queue-full answer is mapped to it too, and gradio_client still raises its QueueError on it).
BUSY_STATUS = 503
RETRY_AFTER_S = 5
BUSY_MESSAGE = "The server is busy: too many requests are waiting. Please retry in a few seconds."
SHUTTING_DOWN_MESSAGE = "The server is restarting. Please retry in a few seconds."
UPLOADS_FULL_MESSAGE = "The server holds too many uploaded files right now. Please retry in a few minutes."
ABANDONED_MESSAGE = "The client closed the connection before a model slot was free."
LOADING_MESSAGE = "The model is still loading. Please retry in a few seconds."
FAILED_MESSAGE = "The model failed to load; the server log says why. Fix MODEL_ID/MODEL_REVISION and restart."


class ServiceError(TweetClassifierError):
    """Base of the errors the service answers with a message the client may see."""

    http_status = 400


class BadRequestError(ServiceError):
    """The request itself is wrong (missing text, wrong type, too long, bad CSV)."""

    http_status = 422


class ServiceNotReadyError(ServiceError):
    """The model has not finished loading (or failed to load)."""

    http_status = 503


class ServiceBusyError(ServiceError):
    """More requests are waiting than the configured queue allows, or one waited too long for a slot."""

    http_status = BUSY_STATUS
    outcome = "rejected"  # how ServingMonitor.track counts it


class RequestAbandonedError(ServiceError):
    """The client went away while its request waited for a model slot: it is dropped before compute."""

    http_status = BUSY_STATUS
    outcome = "abandoned"


class NoModelError(TweetClassifierError):
    """No model was given and none was found locally."""


def client_message(error: TweetClassifierError) -> str:
    """The text of one of our errors as a client may see it."""
    # Messages are ours, but some quote user input: keep them short. Escaping happens at render time.
    message = str(error)
    return message if len(message) <= 300 else message[:297] + "..."
