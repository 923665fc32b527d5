"""The web app through FastAPI's TestClient, over real indexes built with the real model; nothing is mocked.

Two indexes: `small_index` (64 real Wikipedia articles) for answers we know, and a two-article JSONL corpus
written here whose text and title hold markup, so escaping is checked on text that really is in a store.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from typer.testing import CliRunner

from groundsearch.cli import app as cli_app
from retriever import GroundsearchError, IndexCorrupt, IndexNotFound, Reranker, Retriever
from retriever.bundle import FAISS_NAME, STORE_NAME
from web import create_app
from web.api import MAX_PASSAGE_ID
from web.models import InfoResponse, Limits, Passage, SearchHit, SearchResponse

HOTEL = "hotel in Prince Edward Island"  # -> Hotel Charlottetown, first (tests/test_cli.py)
SCRIPT = '<script>alert("groundsearch")</script>'
MARKUP_TITLE = '<b>Markup</b> & "quotes"'
MARKUP_CORPUS = [
    {
        "id": "tag",
        "title": MARKUP_TITLE,
        "url": "javascript:alert(1)",
        "text": f"An article that quotes a tag verbatim: {SCRIPT} and an ampersand & a less-than sign < 3.",
    },
    {
        "id": "river",
        "title": "Plain river",
        "url": "https://example.org/wiki/Plain_river",
        "text": "The river rises in the hills and flows west to the sea past three mill towns.",
    },
]


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


@pytest.fixture(scope="module")
def client(retriever: Retriever) -> Iterator[TestClient]:
    # One client in a `with` block: one event loop for the module, as under uvicorn.
    with TestClient(create_app(retriever)) as c:
        yield c


@pytest.fixture(scope="module")
def markup_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real index over a corpus whose stored text and title hold HTML: the input escaping must survive."""
    from index_build import BuildOptions, RunOptions, build_index

    folder = tmp_path_factory.mktemp("markup")
    corpus = folder / "markup.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in MARKUP_CORPUS), encoding="utf-8")
    out = folder / "markup.idx"
    build_index([corpus], out, BuildOptions(), RunOptions(progress=False, workers=1))
    return out


@pytest.fixture(scope="module")
def markup_client(markup_index: Path) -> Iterator[TestClient]:
    with TestClient(create_app(markup_index)) as c:  # a path, as `groundsearch serve` passes it
        yield c


def expected_hits(retriever: Retriever, q: str, k: int, mode: str | None = None) -> list[dict[str, Any]]:
    return [SearchHit.from_hit(h).model_dump(mode="json") for h in retriever.search(q, k=k, mode=mode)]


# --- the JSON API ---------------------------------------------------------------------------------------------


def test_search_returns_the_retrievers_hits_in_the_documented_shape(client: TestClient, retriever: Retriever) -> None:
    response = client.get("/api/search", params={"q": HOTEL, "k": 3})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    SearchResponse.model_validate(body)
    assert set(body) == set(SearchResponse.model_fields)
    assert all(set(hit) == set(SearchHit.model_fields) for hit in body["hits"])  # nothing extra leaks out
    assert (body["query"], body["mode"], body["k"], body["nprobe"]) == (HOTEL, "hybrid", 3, None)
    assert (body["ef_search"], body["reranked"]) == (None, False)
    assert body["hits"][0]["title"] == "Hotel Charlottetown"
    assert body["hits"] == expected_hits(retriever, HOTEL, 3)
    assert {f["retriever"] for f in body["hits"][0]["found_by"]} == {"dense", "lexical"}
    for hit in body["hits"]:
        assert hashlib.sha256(hit["text"].encode("utf-8")).hexdigest() == hit["sha256"]


def test_highlight_can_be_turned_off(client: TestClient) -> None:
    on = client.get("/api/search", params={"q": HOTEL, "k": 2}).json()["hits"]
    off = client.get("/api/search", params={"q": HOTEL, "k": 2, "highlight": "false"}).json()["hits"]
    assert all(h["highlight"] is not None for h in on) and all(h["highlight"] is None for h in off)
    assert [h["passage_id"] for h in on] == [h["passage_id"] for h in off]


def test_rerank_follows_the_server(client: TestClient, retriever: Retriever, tiny_cross_encoder: Path) -> None:
    """Without `serve --rerank` asking for it is a 422; with one, every search is reranked unless turned off."""
    refused = client.get("/api/search", params={"q": HOTEL, "rerank": "true"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "rerank"]
    reranker = Reranker(str(tiny_cross_encoder), device="cpu", depth=20)
    with TestClient(create_app(retriever, reranker=reranker)) as reranking:
        body = reranking.get("/api/search", params={"q": HOTEL, "k": 3}).json()
        expected = [SearchHit.from_hit(h).model_dump(mode="json") for h in retriever.search(HOTEL, 3, rerank=reranker)]
        assert body["reranked"] is True and body["hits"] == expected
        plain = reranking.get("/api/search", params={"q": HOTEL, "k": 3, "rerank": "false"}).json()
        assert plain["reranked"] is False and plain["hits"] == expected_hits(retriever, HOTEL, 3)
        page = reranking.get("/", params={"q": HOTEL, "k": "3"}).text
        assert page.count('<li class="result"') == 3


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_each_mode_returns_the_libraries_hits(client: TestClient, retriever: Retriever, mode: str) -> None:
    body = client.get("/api/search", params={"q": HOTEL, "k": 5, "mode": mode}).json()
    assert body["mode"] == mode and body["hits"] == expected_hits(retriever, HOTEL, 5, mode)
    if mode != "hybrid":
        assert all([f["retriever"] for f in hit["found_by"]] == [mode] for hit in body["hits"])


def test_k_defaults_and_bounds(client: TestClient) -> None:
    assert len(client.get("/api/search", params={"q": "gunpowder"}).json()["hits"]) == Limits().default_k
    at_max = client.get("/api/search", params={"q": "gunpowder", "k": Limits().max_k})
    assert at_max.status_code == 200 and len(at_max.json()["hits"]) == Limits().max_k
    # nprobe is accepted on an exact index, where there are no lists to visit, and echoed back.
    assert client.get("/api/search", params={"q": "gunpowder", "k": 1, "nprobe": 4}).json()["nprobe"] == 4


def test_passage_by_id_is_the_stored_passage(client: TestClient, retriever: Retriever) -> None:
    hit = retriever.search("gunpowder", k=1)[0]
    response = client.get(f"/api/passages/{hit.passage_id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(Passage.model_fields)
    assert body == Passage.from_hit(retriever.get(hit.passage_id)).model_dump(mode="json")
    assert body["text"] == hit.text and body["citation"] == hit.citation()


@pytest.mark.parametrize(
    "path,params,location",
    [
        ("/api/search", {}, ["query", "q"]),
        ("/api/search", {"q": ""}, ["query", "q"]),
        ("/api/search", {"q": "  \t "}, ["query", "q"]),
        ("/api/search", {"q": "x" * (Limits().max_query_chars + 1)}, ["query", "q"]),
        ("/api/search", {"q": "airport", "k": 0}, ["query", "k"]),
        ("/api/search", {"q": "airport", "k": -3}, ["query", "k"]),
        ("/api/search", {"q": "airport", "k": Limits().max_k + 1}, ["query", "k"]),
        ("/api/search", {"q": "airport", "k": "abc"}, ["query", "k"]),
        ("/api/search", {"q": "airport", "k": "2.5"}, ["query", "k"]),
        ("/api/search", {"q": "airport", "nprobe": 0}, ["query", "nprobe"]),
        ("/api/search", {"q": "airport", "nprobe": "many"}, ["query", "nprobe"]),
        ("/api/search", {"q": "airport", "mode": "fuzzy"}, ["query", "mode"]),
        ("/api/search", {"q": "airport", "ef_search": 0}, ["query", "ef_search"]),
        ("/api/search", {"q": "airport", "highlight": "maybe"}, ["query", "highlight"]),
        ("/api/passages/-1", {}, ["path", "passage_id"]),
        ("/api/passages/abc", {}, ["path", "passage_id"]),
        ("/api/passages/1.5", {}, ["path", "passage_id"]),
        (f"/api/passages/{MAX_PASSAGE_ID + 1}", {}, ["path", "passage_id"]),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(
    client: TestClient, path: str, params: dict[str, Any], location: list[str]
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [location] and errors[0]["msg"]


@pytest.mark.parametrize("past_the_end", [0, 100_000, None])
def test_unknown_passage_is_404_with_one_line(
    client: TestClient, retriever: Retriever, past_the_end: int | None
) -> None:
    last = len(retriever) - 1
    passage_id = MAX_PASSAGE_ID if past_the_end is None else last + 1 + past_the_end
    response = client.get(f"/api/passages/{passage_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"no passage with id {passage_id} (ids run from 0 to {last})"}


def test_info_and_health(client: TestClient, retriever: Retriever, small_index: Path) -> None:
    info = client.get("/api/info").json()
    InfoResponse.model_validate(info)
    assert info["index"] == small_index.name and info["documents"] == 64 and info["passages"] == len(retriever)
    assert info["model"]["name"] == retriever.manifest.model.name and info["faiss_factory"] == "Flat"
    assert info["limits"] == Limits().model_dump() and info["modes"] == ["hybrid", "dense", "lexical"]
    # Corpus files by name only: the build machine's paths are not the clients' business.
    assert [s["name"] for s in info["sources"]] == ["camchenry-wikidump_benches_enwiki-10k.xml.bz2"]
    assert client.get("/healthz").json() == {"status": "ok", "passages": len(retriever)}
    head = client.head("/healthz")
    assert head.status_code == 200 and head.content == b""


def test_openapi_lists_routes_parameters_and_limits(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/api/search", "/api/passages/{passage_id}", "/api/info", "/healthz"} <= set(paths)
    assert "/" not in paths  # the HTML page is not part of the API
    operation_ids = [op["operationId"] for methods in paths.values() for op in methods.values()]
    assert len(operation_ids) == len(set(operation_ids)), operation_ids  # OpenAPI requires them unique

    search = {p["name"]: p for p in paths["/api/search"]["get"]["parameters"]}
    assert set(search) == {"q", "k", "nprobe", "mode", "ef_search", "highlight", "rerank"}
    assert search["q"]["required"]
    modes = next(s for s in search["mode"]["schema"]["anyOf"] if "enum" in s)["enum"]
    assert modes == ["dense", "lexical", "hybrid"] and not search["mode"]["required"]
    assert search["q"]["schema"]["maxLength"] == Limits().max_query_chars
    assert (search["k"]["schema"]["minimum"], search["k"]["schema"]["maximum"]) == (1, Limits().max_k)
    assert search["k"]["schema"]["default"] == Limits().default_k and not search["nprobe"]["required"]
    (passage_id,) = paths["/api/passages/{passage_id}"]["get"]["parameters"]
    assert passage_id["in"] == "path" and passage_id["schema"]["maximum"] == MAX_PASSAGE_ID
    assert "404" in paths["/api/passages/{passage_id}"]["get"]["responses"]

    schemas = spec["components"]["schemas"]
    hit = client.get("/api/search", params={"q": "gunpowder", "k": 1}).json()["hits"][0]
    assert set(schemas["SearchHit"]["properties"]) == set(hit)


def test_limits_are_configurable_and_reach_the_schema(retriever: Retriever) -> None:
    app = create_app(retriever, max_query_chars=20, max_k=5, default_k=2)
    with TestClient(app) as c:
        assert len(c.get("/api/search", params={"q": "gunpowder"}).json()["hits"]) == 2
        assert c.get("/api/search", params={"q": "gunpowder", "k": 6}).status_code == 422
        assert c.get("/api/search", params={"q": "x" * 21}).status_code == 422
        assert c.get("/", params={"q": "gunpowder", "k": "6"}).status_code == 422
        assert c.get("/api/info").json()["limits"] == {"max_query_chars": 20, "max_k": 5, "default_k": 2}
        parameters = c.get("/openapi.json").json()["paths"]["/api/search"]["get"]["parameters"]
        assert next(p for p in parameters if p["name"] == "k")["schema"]["maximum"] == 5
    with pytest.raises(ValueError, match="default_k <= max_k"):
        create_app(retriever, max_k=5, default_k=10)


def test_cors_is_off_unless_origins_are_given(client: TestClient, retriever: Retriever) -> None:
    origin = {"Origin": "https://docs.example.org"}
    plain = client.get("/api/search", params={"q": "gunpowder", "k": 1}, headers=origin)
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    with TestClient(create_app(retriever, cors_origins=["https://docs.example.org"])) as c:
        allowed = c.get("/api/search", params={"q": "gunpowder", "k": 1}, headers=origin)
        assert allowed.headers["access-control-allow-origin"] == "https://docs.example.org"
        other = c.get("/api/info", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = {**origin, "Access-Control-Request-Method": "POST"}
        assert c.options("/api/search", headers=preflight).status_code == 400  # read-only: GET only


def test_concurrent_clients_get_the_single_client_answers(client: TestClient) -> None:
    queries = [HOTEL, "gunpowder", "Haitian police chief", "block copolymer", "watch that stops time", "manifold"]
    single = {q: client.get("/api/search", params={"q": q, "k": 5}).json() for q in queries}
    jobs = queries * 8

    def ask(q: str) -> tuple[str, int, Any]:
        response = client.get("/api/search", params={"q": q, "k": 5})
        return q, response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, jobs))
    assert len(answers) == len(jobs)
    for q, status, body in answers:
        assert status == 200 and body == single[q], q


# --- markup in the corpus -------------------------------------------------------------------------------------


def test_markup_is_verbatim_in_json_and_escaped_on_the_page(markup_client: TestClient) -> None:
    hits = markup_client.get("/api/search", params={"q": "a quoted script tag", "k": 2}).json()["hits"]
    tagged = next(h for h in hits if h["title"] == MARKUP_TITLE)
    assert SCRIPT in tagged["text"]  # the store holds the markup as text
    assert markup_client.get(f"/api/passages/{tagged['passage_id']}").json()["text"] == tagged["text"]

    page = markup_client.get("/", params={"q": "a quoted script tag", "k": "2"})
    assert page.status_code == 200
    html = page.text
    assert "&lt;script&gt;alert(&#34;groundsearch&#34;)&lt;/script&gt;" in html
    assert str(escape(MARKUP_TITLE)) in html
    # The passage is shown whole, escaped, its highlight inside <mark>: three escaped pieces, no markup built.
    s, e = tagged["highlight"]["start"], tagged["highlight"]["end"]
    text = tagged["text"]
    assert SCRIPT in text[s:e]  # the highlight is the sentence with the tag in it
    shown = f'{escape(text[:s])}<mark class="answer" title="the part of the passage that best answers the query">'
    assert f"{shown}{escape(text[s:e])}</mark>{escape(text[e:])}</blockquote>" in html
    assert SCRIPT not in html and "<b>Markup</b>" not in html
    assert 'href="javascript:' not in html  # a javascript: URL in the corpus is shown, never linked
    assert html.count("<script") == 1  # only the page's own /static/cite.js


def test_index_broken_under_a_running_server_is_500_one_line(markup_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "broken.idx"
    shutil.copytree(markup_index, copy)
    with TestClient(create_app(copy)) as c:
        assert c.get("/api/search", params={"q": "river"}).status_code == 200
        with sqlite3.connect(copy / STORE_NAME) as db:  # the store loses its rows after start-up
            db.execute("DELETE FROM passages")
        api = c.get("/api/search", params={"q": "river"})
        assert api.status_code == 500 and "in the index but not in the store" in api.json()["detail"]
        page = c.get("/", params={"q": "river"})
        assert page.status_code == 500 and "The index could not answer this search" in page.text
        assert "state-error" in page.text and c.get("/api/passages/0").status_code == 404


# --- the page -------------------------------------------------------------------------------------------------


def test_empty_page_has_the_box_and_the_security_headers(client: TestClient) -> None:
    for params in ({}, {"q": "   "}):
        page = client.get("/", params=params)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'class="state-empty"' in page.text and "autofocus" in page.text
        assert 'class="results"' not in page.text and "Verbatim passages from 64 articles" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/style.css", "/static/cite.js", "/static/favicon.svg"):
        assert client.get(asset).status_code == 200


def test_results_page_shows_verbatim_passages_and_keeps_the_query(client: TestClient, retriever: Retriever) -> None:
    page = client.get("/", params={"q": HOTEL, "k": "3"})
    assert page.status_code == 200 and 'class="state-results"' in page.text
    assert f'value="{HOTEL}"' in page.text and '<input type="hidden" name="k" value="3">' in page.text
    assert page.text.count('<li class="result"') == 3 and "content-security-policy" in page.headers
    unmarked = re.sub(r'<mark class="answer"[^>]*>|</mark>', "", page.text)  # the highlight, around verbatim text
    for hit in retriever.search(HOTEL, k=3):
        assert str(escape(hit.text)) in unmarked and str(escape(hit.citation())) in page.text
    assert "Hotel Charlottetown" in page.text


def test_a_query_with_markup_is_kept_escaped(client: TestClient) -> None:
    q = '"><img src=x onerror=alert(1)>'
    html = client.get("/", params={"q": q}).text
    assert f'value="{escape(q)}"' in html and "<img src=x" not in html


@pytest.mark.parametrize(
    "params,message",
    [
        ({"q": HOTEL, "k": "abc"}, "k must be a whole number from 1 to 100, not “abc”."),
        ({"q": HOTEL, "k": "0"}, "k must be a whole number from 1 to 100"),
        ({"q": HOTEL, "k": "101"}, "k must be a whole number from 1 to 100"),
        ({"q": "y" * 501}, "the limit is 500"),
        ({"q": HOTEL, "mode": "fuzzy"}, "Unknown search mode “fuzzy”; this index offers dense, lexical, hybrid."),
    ],
)
def test_bad_page_parameters_show_a_422_error_page(client: TestClient, params: dict[str, str], message: str) -> None:
    page = client.get("/", params=params)
    assert page.status_code == 422 and 'class="state-error"' in page.text and 'role="alert"' in page.text
    assert str(escape(message)) in page.text and f'value="{params["q"]}"' in page.text
    assert 'class="results"' not in page.text and "content-security-policy" in page.headers


def test_no_results_state(client: TestClient) -> None:
    """A lexical search for a word no passage holds finds nothing; dense and hybrid always return k hits."""
    page = client.get("/", params={"q": "<zqxwvy>", "mode": "lexical"})
    assert page.status_code == 200 and 'class="state-none"' in page.text
    assert "No passages found for <q>&lt;zqxwvy&gt;</q>" in page.text and 'class="results"' not in page.text
    assert '<option value="lexical" selected>' in page.text  # the mode rides along into the next search


# --- start-up errors: the app factory and `groundsearch serve` say the same thing ------------------------------


def _broken(kind: str, markup_index: Path, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "nope.idx"
    if kind == "file":
        (tmp_path / "notes.txt").write_text("hello")
        return tmp_path / "notes.txt"
    copy = tmp_path / "truncated.idx"
    shutil.copytree(markup_index, copy)
    data = (copy / FAISS_NAME).read_bytes()
    (copy / FAISS_NAME).write_bytes(data[: len(data) // 2])
    return copy


@pytest.mark.parametrize("kind,error", [("missing", IndexNotFound), ("file", IndexNotFound), ("torn", IndexCorrupt)])
def test_serve_on_a_bad_index_exits_1_with_the_factorys_error(
    markup_index: Path, tmp_path: Path, kind: str, error: type[GroundsearchError]
) -> None:
    path = _broken(kind, markup_index, tmp_path)
    with pytest.raises(error) as raised:
        create_app(path)
    result = CliRunner().invoke(cli_app, ["serve", str(path), "--port", "1"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {raised.value}"]


def test_serve_refuses_inconsistent_limits_before_opening(small_index: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", str(small_index), "--max-k", "5", "--default-k", "10"])
    assert result.exit_code == 2 and "default_k <= max_k" in result.output + result.stderr
