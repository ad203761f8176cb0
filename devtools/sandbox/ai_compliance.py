"""The sandbox's AI compliance service: an OpenAI-compatible `POST /v1/chat/completions`, deterministic and
rule-driven, with configurable latency, errors, token usage and a per-model price (a billing ledger the tests use
as the referee of the client's own token and cost accounting; production never sees it).

Transport-free like state.py: `routes(sb)` turns requests into calls on `sb.ai` (AIState). Shapes from OpenAI's API
reference and its error-code guide:
  * Chat completion object (id `chatcmpl-…`, object "chat.completion", created, model, system_fingerprint,
    choices[{index, message{role, content, refusal}, logprobs, finish_reason}], usage{prompt_tokens,
    completion_tokens, total_tokens, prompt_tokens_details, completion_tokens_details}):
    https://platform.openai.com/docs/api-reference/chat/object (schema mirrored at
    https://apis.io/schemas/openai/openai-chat-completion/)
  * Request: model, messages[{role, content}], response_format {"type": "json_object"}, max_completion_tokens,
    temperature, seed: https://platform.openai.com/docs/api-reference/chat/create
  * Errors: {"error": {"message", "type", "param", "code"}}; 401 invalid_api_key, 404 model_not_found,
    429 rate_limit_exceeded (type "requests"), 500 server_error, 503 "The engine is currently overloaded":
    https://platform.openai.com/docs/guides/error-codes

The "model" reads the user message (the JSON the client sends: pack_key, title, body, disclaimer) and applies
fixed rules, so a verdict is reproducible: banned claims, a missing SEBI disclaimer, and misleading assurances the
project's regex rules do not catch ("guaranteed to grow", "can't lose"). Its answer is the assistant message's
content, a JSON object {"verdict": "pass"|"fail", "findings": [{"code", "message", "evidence"}]}.

Admin: GET /_sandbox/ai (config and the billing ledger), POST /_sandbox/ai {"models": {name: {latency_s,
error_rate, error_status, prompt_tokens, completion_tokens, cost_per_1k_tokens}}, "reset_usage": bool}.
"""
from __future__ import annotations

import asyncio
import json
import math
import random
import re
import secrets
import time
from dataclasses import asdict, dataclass, field

MAIN_MODEL = "gpt-4o"
LIGHT_MODEL = "gpt-4o-mini"

# Phrases the regex rules of include/content/render_qc.py also know, and assurances only a reader catches.
_BANNED = ("guaranteed returns", "guaranteed return", "assured returns", "assured return", "risk-free", "risk free",
           "no risk", "zero risk", "100% safe", "double your money", "sure shot", "sure-shot", "capital guaranteed",
           "guaranteed profit", "fixed returns on equity")
_MISLEADING = (
    (re.compile(r"\bguarantee[ds]?\b", re.I), "promises a guaranteed outcome"),
    (re.compile(r"\b(can(?:no|')t|cannot|never) lose\b", re.I), "says the investor cannot lose"),
    (re.compile(r"\bno (?:chance|possibility) of (?:any )?loss", re.I), "denies any chance of loss"),
    (re.compile(r"\b(?:will|must) (?:definitely|surely) (?:rise|grow|double|go up)\b", re.I),
     "predicts a certain price move"),
    (re.compile(r"\binsider (?:tip|information|news)\b", re.I), "cites insider information"),
)
_DISCLAIMER_PHRASES = ("subject to market risks", "read all the related documents")
_ERRORS = {
    429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later", "server_error", None),
}


@dataclass
class ModelConfig:
    latency_s: float = 0.0          # added before answering
    error_rate: float = 0.0         # share of calls answered with error_status (seeded RNG: reproducible)
    error_status: int = 500         # 429, 500, 502 or 503
    prompt_tokens: int | None = None       # fixed usage instead of the ~4 characters per token estimate
    completion_tokens: int | None = None
    cost_per_1k_tokens: float = 0.0  # what the sandbox "bills" per 1,000 total tokens (the tests' referee)


def _default_models() -> dict[str, ModelConfig]:
    return {MAIN_MODEL: ModelConfig(cost_per_1k_tokens=0.42), LIGHT_MODEL: ModelConfig(cost_per_1k_tokens=0.05)}


@dataclass
class AIState:
    models: dict[str, ModelConfig] = field(default_factory=_default_models)
    seed: int = 7
    usage: dict[str, dict] = field(default_factory=dict)   # per model: calls, errors, tokens, billed cost
    calls: list[dict] = field(default_factory=list)        # one entry per request (model, status, latency)

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def configure(self, data: dict) -> None:
        unknown = sorted(set(data) - {"models", "reset_usage"})
        if unknown:
            raise ValueError(f"unknown AI setting(s): {', '.join(unknown)}")
        for name, values in (data.get("models") or {}).items():
            cfg = self.models.setdefault(name, ModelConfig())
            bad = sorted(set(values) - set(asdict(cfg)))
            if bad:
                raise ValueError(f"unknown setting(s) for model {name!r}: {', '.join(bad)}")
            if "error_status" in values and values["error_status"] not in _ERRORS:
                raise ValueError(f"error_status must be one of {sorted(_ERRORS)}")
            for k, v in values.items():
                setattr(cfg, k, v)
        if data.get("reset_usage"):
            self.usage.clear()
            self.calls.clear()

    def public(self) -> dict:
        return {"models": {k: asdict(v) for k, v in self.models.items()}, "usage": self.usage,
                "calls": self.calls[-1000:]}


def review(content: str) -> dict:
    """The deterministic verdict for one user message."""
    try:
        pack = json.loads(content)
        if not isinstance(pack, dict):
            raise ValueError
    except ValueError:
        pack = {"title": "", "body": content, "disclaimer": content}
    claims = f"{pack.get('title') or ''}\n{pack.get('body') or ''}"
    disclaimer = " ".join(str(pack.get("disclaimer") or "").split()).casefold()
    findings = []
    banned = sorted({p for p in _BANNED if re.search(r"(?<![\w-])" + re.escape(p) + r"(?![\w-])", claims, re.I)})
    if banned:
        findings.append({"code": "BANNED_CLAIM", "message": "banned claim under SEBI's advertisement code",
                         "evidence": ", ".join(banned)})
    if not banned:  # a banned phrase already covers its "guaranteed"
        for rx, why in _MISLEADING:
            m = rx.search(claims)
            if m:
                findings.append({"code": "MISLEADING_ASSURANCE", "message": f"the text {why}",
                                 "evidence": m.group(0)})
    missing = [p for p in _DISCLAIMER_PHRASES if p not in disclaimer]
    if missing:
        findings.append({"code": "DISCLAIMER_MISSING", "message": "the SEBI disclaimer is missing or incomplete",
                         "evidence": ", ".join(missing)})
    return {"verdict": "fail" if findings else "pass", "findings": findings}


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def routes(sb) -> list:
    """Starlette routes; `sb` is the Sandbox (state.py) holding `sb.ai`."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def _json(data, status: int = 200) -> Response:
        return Response(json.dumps(data), status_code=status, media_type="application/json",
                        headers={"x-request-id": "req_" + secrets.token_hex(12)})

    def _error(status: int, message: str, type_: str, code: str | None, param: str | None = None) -> Response:
        return _json({"error": {"message": message, "type": type_, "param": param, "code": code}}, status)

    async def chat_completions(request: Request) -> Response:
        ai = sb.ai
        started = time.monotonic()
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
            return _error(401, "You didn't provide an API key.", "invalid_request_error", "invalid_api_key")
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error", None)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return _error(400, "'model' and 'messages' are required properties.", "invalid_request_error", None,
                          "messages")
        model = str(body["model"])
        cfg = ai.models.get(model)
        if cfg is None:
            return _error(404, f"The model `{model}` does not exist or you do not have access to it.",
                          "invalid_request_error", "model_not_found")
        use = ai.usage.setdefault(model, {"calls": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                          "total_tokens": 0, "billed_cost": 0.0})
        use["calls"] += 1
        if cfg.latency_s > 0:
            await asyncio.sleep(cfg.latency_s)
        if cfg.error_rate > 0 and ai.rng.random() < cfg.error_rate:
            use["errors"] += 1
            message, type_, code = _ERRORS[cfg.error_status]
            ai.calls.append({"model": model, "status": cfg.error_status,
                             "latency_s": round(time.monotonic() - started, 3)})
            return _error(cfg.error_status, message, type_, code)
        user = next((m.get("content") for m in reversed(body["messages"])
                     if isinstance(m, dict) and m.get("role") == "user"), "") or ""
        if isinstance(user, list):  # content parts
            user = " ".join(p.get("text", "") for p in user if isinstance(p, dict))
        content = json.dumps(review(str(user)))
        prompt = cfg.prompt_tokens if cfg.prompt_tokens is not None else sum(
            _tokens(str(m.get("content") or "")) + 4 for m in body["messages"] if isinstance(m, dict))
        completion = cfg.completion_tokens if cfg.completion_tokens is not None else _tokens(content)
        total = prompt + completion
        use["prompt_tokens"] += prompt
        use["completion_tokens"] += completion
        use["total_tokens"] += total
        use["billed_cost"] = round(use["billed_cost"] + total / 1000 * cfg.cost_per_1k_tokens, 6)
        ai.calls.append({"model": model, "status": 200, "latency_s": round(time.monotonic() - started, 3)})
        return _json({
            "id": "chatcmpl-" + secrets.token_urlsafe(21), "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_sandbox",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
        })

    async def admin(request: Request) -> Response:
        if request.method == "POST":
            try:
                sb.ai.configure(json.loads(await request.body() or b"{}"))
            except (ValueError, TypeError, AttributeError) as exc:
                return _json({"error": str(exc)}, 400)
        return _json(sb.ai.public())

    return [Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/_sandbox/ai", admin, methods=["GET", "POST"])]
