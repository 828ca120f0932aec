"""Pricing and hold sizing: the charge (upstream's cost times the markup), catalogue prices, the hold."""

import json
from decimal import Decimal

from ops_gateway.billing import pricing

MODEL = {"id": "openai/gpt-4o-mini", "pricing": {"prompt": "0.00000015", "completion": "0.0000006"}}
FREE = {"id": "test/free-model", "pricing": {"prompt": "0", "completion": "0"}}


def test_price_is_prompt_tokens_at_prompt_price_plus_completion_tokens_at_completion_price():
    assert pricing.price(MODEL, 10, 20) == Decimal(10) * Decimal("0.00000015") + Decimal(20) * Decimal("0.0000006")


def test_price_is_exact_decimal_rounded_half_up_to_ten_places():
    tiny = {"pricing": {"prompt": "0.00000000005", "completion": "0"}}
    assert pricing.price(tiny, 1, 0) == Decimal("0.0000000001")
    assert pricing.price(tiny, 1, 0).as_tuple().exponent == -10


def test_a_failed_request_costs_nothing_whatever_its_tokens_or_reported_cost():
    assert pricing.charge(MODEL, "error", Decimal("0.5"), 1000, 1000, Decimal(1)) == 0
    assert pricing.charge(MODEL, "incomplete", None, 10, 20, Decimal(1)) == pricing.price(MODEL, 10, 20)


def test_the_charge_is_upstreams_reported_cost_times_the_markup_whatever_the_catalogue_says():
    assert pricing.charge(MODEL, "success", Decimal("0.00002"), 10, 20, Decimal(1)) == Decimal("0.00002")
    assert pricing.charge(MODEL, "success", Decimal("0.00002"), 10, 20, Decimal("1.25")) == Decimal("0.000025")
    assert pricing.charge(MODEL, "success", None, 10, 20, Decimal(2)) == 2 * pricing.price(MODEL, 10, 20)


def test_an_unpriced_model_is_priced_at_its_hold_pricing_never_below_zero():
    auto = {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}}
    assert pricing.is_unpriced(auto["pricing"]) and not pricing.is_unpriced(MODEL["pricing"])
    held = {**auto, "hold_pricing": {"prompt": "0.000003", "completion": "0.000015"}}
    assert pricing.price(held, 10, 20) == Decimal("0.00033")


def test_an_embedding_batch_is_bounded_by_a_context_per_input_not_one():
    embedder = {"id": "e", "context_length": 8, "pricing": {"prompt": "0.00000002", "completion": "0"}}
    body = {"model": "e", "input": [[1] * 50] * 4}
    assert pricing.prompt_bound(body, 8, pricing.EMBEDDINGS) == 32
    worst = pricing.worst_case(embedder, body, 1024, pricing.EMBEDDINGS)
    assert (worst.prompt_tokens, worst.completion_tokens, worst.output_limit) == (32, 0, 0)
    assert pricing.prompt_bound({"model": "e", "input": [1] * 50}, 8, pricing.EMBEDDINGS) == 8  # one token array


def test_hold_is_the_price_of_the_body_bytes_and_max_tokens():
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}
    worst = pricing.worst_case(MODEL, body, default_max_tokens=1024)
    assert (worst.prompt_tokens, worst.completion_tokens) == (pricing.body_bytes(body), 50)
    assert worst.cost == pricing.price(MODEL, pricing.body_bytes(body), 50)
    assert worst.prompt_bound == pricing.body_bytes(body)  # charged for the prompt of a stream that reported nothing
    assert worst.output_limit == 50  # sent upstream


def test_body_bytes_are_the_utf8_bytes_of_the_body_as_sent():
    assert pricing.body_bytes({"a": "é"}) == len('{"a":"é"}'.encode())


def test_prompt_bound_counts_tools_and_response_format_not_just_message_text():
    messages = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": f"f{i}", "parameters": {"type": "object"}}} for i in range(100)]
    plain = pricing.prompt_bound({"messages": messages})
    response_format = {"type": "json_object"}
    with_tools = pricing.prompt_bound({"messages": messages, "tools": tools, "response_format": response_format})
    assert with_tools >= plain + len(json.dumps(tools, separators=(",", ":")))


def test_prompt_bound_is_capped_at_the_context_length():
    body = {"messages": [{"role": "user", "content": "x" * 10_000}]}
    assert pricing.prompt_bound(body, context_length=4096) == 4096
    assert pricing.prompt_bound(body) == pricing.body_bytes(body)


def test_an_image_part_makes_the_prompt_bound_the_whole_context():
    parts = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "https://x/i.png"}}]
    body = {"messages": [{"role": "user", "content": parts}]}
    assert pricing.prompt_bound(body, context_length=128_000) == 128_000


def test_hold_fits_prompt_and_completion_within_the_context_at_their_dearest_split():
    model = {**MODEL, "context_length": 1000}
    body = {"messages": [{"role": "user", "content": "x" * 5000}], "max_tokens": 300}
    worst = pricing.worst_case(model, body, 1024)
    # completion is dearer than prompt, so the completion gets its 300 and the prompt the rest
    assert (worst.prompt_tokens, worst.completion_tokens) == (700, 300)
    assert worst.cost == pricing.price(MODEL, 700, 300)


def test_hold_prefers_prompt_when_prompt_tokens_are_dearer():
    model = {"context_length": 1000, "pricing": {"prompt": "0.00001", "completion": "0.000001"}}
    body = {"messages": [{"role": "user", "content": "x" * 5000}], "max_tokens": 300}
    worst = pricing.worst_case(model, body, 1024)
    assert (worst.prompt_tokens, worst.completion_tokens) == (1000, 0)


def test_hold_without_max_tokens_uses_max_completion_tokens_then_the_default():
    messages = [{"role": "user", "content": "hello"}]
    assert pricing.worst_case(MODEL, {"messages": messages, "max_completion_tokens": 7}, 1024).completion_tokens == 7
    assert pricing.worst_case(MODEL, {"messages": messages}, 1024).completion_tokens == 1024


def test_default_max_tokens_is_capped_at_the_context_length():
    model = {**MODEL, "context_length": 512}
    worst = pricing.worst_case(model, {"messages": [{"role": "user", "content": "hi"}]}, 1024)
    assert worst.completion_tokens <= 512 and worst.prompt_tokens + worst.completion_tokens <= 512


def test_a_free_model_holds_nothing():
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}
    assert pricing.worst_case(FREE, body, 1024).cost == 0


def test_upstream_reported_tokens_are_charged_over_the_estimates():
    assert pricing.billable_tokens({"prompt_tokens": 12, "completion_tokens": 3}, 8, 50) == (12, 3)


def test_unreported_tokens_fall_back_to_the_prompt_estimate_and_the_given_completion_count():
    assert pricing.billable_tokens(None, 8, 5) == (8, 5)
    assert pricing.billable_tokens({"prompt_tokens": 12}, 8, 5) == (12, 5)
    assert pricing.billable_tokens({"completion_tokens": 0}, 8, 5) == (8, 0)
