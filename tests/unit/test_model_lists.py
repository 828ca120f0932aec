"""model_lists: what the catalogue keeps of OpenRouter's two model lists, and how they merge."""

from ops_gateway.upstream import model_lists

CHAT = {"id": "a/chat", "pricing": {"prompt": 1e-7, "completion": "0.0000002"}}
IMAGE = {"id": "a/image", "architecture": {"output_modalities": ["image", "text"]}}
EMBEDDER = {"id": "a/embed", "architecture": {"output_modalities": ["embeddings"]}, "pricing": {"prompt": "1e-8"}}


def test_entries_serve_the_endpoints_of_their_list_and_keep_exact_prices():
    chat, image, listed_embedder = (model_lists.normalise(m, "models") for m in (CHAT, IMAGE, EMBEDDER))
    assert chat["endpoints"] == image["endpoints"] == ["chat", "responses", "messages"]
    assert listed_embedder["endpoints"] == ["embeddings"]  # /models saying embeddings: still an embedder
    assert model_lists.normalise({"id": "b/x"}, "embeddings")["endpoints"] == ["embeddings"]
    assert chat["pricing"] == {"prompt": "0.0000001", "completion": "0.0000002"}
    assert model_lists.normalise(EMBEDDER, "embeddings")["pricing"] == {"prompt": "0.00000001", "completion": "-1"}


def test_a_model_in_both_lists_serves_both_and_a_list_not_read_keeps_its_previous_entries():
    both = model_lists.merged(
        {"models": [model_lists.normalise(CHAT, "models")], "embeddings": [model_lists.normalise(CHAT, "embeddings")]},
        previous=(),
    )
    assert [(m["id"], m["endpoints"]) for m in both] == [("a/chat", ["chat", "responses", "messages", "embeddings"])]
    previous = [{"id": "old/chat"}, model_lists.normalise(EMBEDDER, "embeddings")]  # the first from before endpoints
    kept = model_lists.merged({"models": [model_lists.normalise(IMAGE, "models")]}, previous)
    assert [(m["id"], m["endpoints"]) for m in kept] == [
        ("a/image", ["chat", "responses", "messages"]),
        ("a/embed", ["embeddings"]),
    ]
    kept = model_lists.merged({"embeddings": []}, previous)
    assert [(m["id"], m["endpoints"]) for m in kept] == [("old/chat", ["chat", "responses", "messages"])]
