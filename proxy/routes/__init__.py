"""HTTP routes. Handlers are short: authenticate, parse, call the pipeline, render."""

from starlette.routing import Route

from proxy.routes import chat, completions, embeddings, health, models

ROUTES = [
    Route("/v1/chat/completions", chat.create, methods=["POST"]),
    Route("/v1/completions", completions.create, methods=["POST"]),
    Route("/v1/embeddings", embeddings.create, methods=["POST"]),
    Route("/v1/models", models.list_models, methods=["GET"]),
    Route("/healthz", health.live, methods=["GET"]),
    Route("/readyz", health.ready, methods=["GET"]),
]
