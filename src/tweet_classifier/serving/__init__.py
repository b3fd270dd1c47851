"""The app: the classifier service, HTTP API, Gradio UI and the live numbers it shows."""
