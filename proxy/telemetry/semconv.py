"""Attribute and metric names.

The ``gen_ai.*`` names are those released in OpenTelemetry semantic-conventions v1.41
(the GenAI conventions moved to their own repository afterwards); ``http.*``,
``server.*``, ``url.*`` and ``error.type`` are the stable HTTP conventions. Tollhouse's
governance attributes live under ``tollhouse.``. Kept here as constants so that every
name appears once and a typo is an import error.
"""

from __future__ import annotations

from typing import Final

from proxy.endpoint import Endpoint

# -- GenAI (v1.41) -----------------------------------------------------------------------
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_SEED: Final = "gen_ai.request.seed"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
TOKEN_TYPE: Final = "gen_ai.token.type"  # noqa: S105 (a name, not a secret)
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
OPENAI_SYSTEM_FINGERPRINT: Final = "gen_ai.openai.response.system_fingerprint"

OPERATIONS: Final = {
    Endpoint.CHAT: "chat",
    Endpoint.COMPLETIONS: "text_completion",
    Endpoint.EMBEDDINGS: "embeddings",
}

# -- General and HTTP ----------------------------------------------------------------
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_METHOD: Final = "http.request.method"
HTTP_ROUTE: Final = "http.route"
HTTP_STATUS: Final = "http.response.status_code"
URL_PATH: Final = "url.path"
URL_SCHEME: Final = "url.scheme"

# -- Tollhouse's governance attributes ---------------------------------------------------
REQUEST_ID: Final = "tollhouse.request.id"
APP: Final = "tollhouse.app"
TEAM: Final = "tollhouse.team"
MODEL_ALIAS: Final = "tollhouse.model.alias"
POLICY_NAME: Final = "tollhouse.policy.name"
POLICY_VERSION: Final = "tollhouse.policy.version"
DECISION: Final = "tollhouse.decision"
DECISION_RULES: Final = "tollhouse.decision.rules"
DESTINATION: Final = "tollhouse.destination"
UPSTREAM: Final = "tollhouse.upstream"
PII_PREFIX: Final = "tollhouse.pii."  # + lower-case entity type: how many were found
PII_ENTITY: Final = "tollhouse.pii.entity"
PII_ACTION: Final = "tollhouse.pii.action"
BUDGET_STATE: Final = "tollhouse.budget.state"  # none, ok, warning, exhausted
BUDGET_USED: Final = "tollhouse.budget.used"  # largest fraction of any budget that applied
BUDGET_NAME: Final = "tollhouse.budget.name"
BUDGET_SCOPE: Final = "tollhouse.budget.scope"
BUDGET_SUBJECT: Final = "tollhouse.budget.subject"
COMPLETION: Final = "tollhouse.completion"  # the audit record's status
ATTEMPTS: Final = "tollhouse.attempts"
ATTEMPT: Final = "tollhouse.attempt"  # 1-based number of a client span's attempt
ROUTE_REASON: Final = "tollhouse.route.reason"  # why the first deployment came first
ROUTE_CANDIDATES: Final = "tollhouse.route.candidates"  # upstreams in the order tried
ROUTE_EXCLUDED: Final = "tollhouse.route.excluded"  # upstreams the policy ruled out
COST: Final = "tollhouse.cost"
CURRENCY: Final = "tollhouse.currency"
OVERHEAD_MS: Final = "tollhouse.overhead_ms"
CONTENT_OMITTED: Final = "tollhouse.content.omitted"

# Attributes whose values Tollhouse takes from configuration, a fixed vocabulary, a number
# or an identifier it made; the exporter's scrubber skips them (every other string is
# scrubbed). ``gen_ai.request.model`` is only set for configured aliases and deployments.
SAFE_ATTRIBUTES: Final = frozenset(
    {
        OPERATION_NAME,
        PROVIDER_NAME,
        REQUEST_MODEL,
        TOKEN_TYPE,
        SERVER_ADDRESS,
        HTTP_METHOD,
        HTTP_ROUTE,
        URL_SCHEME,
        REQUEST_ID,
        APP,
        TEAM,
        MODEL_ALIAS,
        POLICY_NAME,
        DECISION,
        DECISION_RULES,
        DESTINATION,
        UPSTREAM,
        ROUTE_REASON,
        ROUTE_CANDIDATES,
        ROUTE_EXCLUDED,
        BUDGET_STATE,
        COMPLETION,
        CURRENCY,
    }
)

# -- Metrics ---------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # noqa: S105
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_HTTP_DURATION: Final = "http.server.request.duration"
METRIC_DECISIONS: Final = "tollhouse.decisions"
METRIC_REDACTIONS: Final = "tollhouse.redactions"
METRIC_AUDIT_WRITE: Final = "tollhouse.audit.write.duration"
METRIC_AUDIT_QUEUE: Final = "tollhouse.audit.queue.depth"
METRIC_BUDGET_USED: Final = "tollhouse.budget.utilization"
METRIC_SPEND: Final = "tollhouse.spend"
METRIC_UPSTREAM_ERRORS: Final = "tollhouse.upstream.errors"
METRIC_UPSTREAM_RETRIES: Final = "tollhouse.upstream.retries"

# Bucket boundaries the GenAI conventions ask for.
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS_S: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
# Tollhouse's own latencies are mostly sub-millisecond to a few hundred milliseconds.
FAST_BUCKETS_S: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
