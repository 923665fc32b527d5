"""The web app through FastAPI's TestClient, over real indexes built with the real model; nothing is mocked.

Two indexes: `small_index` (68 real Wikipedia articles) for answers we know, and a two-article JSONL corpus
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
    result = retriever.search_with_status(q, k=k, mode=mode)
    return [SearchHit.from_hit(h, weak=result.is_weak(h)).model_dump(mode="json") for h in result.hits]


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


def test_search_says_whether_anything_matches_well(client: TestClient, retriever: Retriever) -> None:
    strong = client.get("/api/search", params={"q": HOTEL, "k": 3}).json()
    assert strong["answerable"] is True and strong["confidence"] == strong["hits"][0]["confidence"]
    assert strong["min_confidence"] == pytest.approx(retriever.calibration.threshold("hybrid"))  # type: ignore[union-attr]
    miss = client.get("/api/search", params={"q": "xyzzyqwv", "k": 3}).json()
    assert miss["answerable"] is False and [h["weak"] for h in miss["hits"]] == [True, True, True]
    asked = client.get("/api/search", params={"q": "xyzzyqwv", "k": 3, "min_confidence": 0}).json()
    assert asked["answerable"] is True and asked["min_confidence"] == 0
    assert client.get("/api/search", params={"q": HOTEL, "min_confidence": 2}).status_code == 422
    page = client.get("/", params={"q": "xyzzyqwv"})
    assert '<p class="no-match" role="status">No passage in this corpus matches well' in page.text
    assert page.text.count('class="result weak"') == 10 and "weak match" in page.text
    page = client.get("/", params={"q": HOTEL})
    assert 'class="no-match"' not in page.text and "strong match" in page.text


def test_hits_from_a_disambiguation_page_say_so(client: TestClient) -> None:
    filtered = client.get("/api/search", params={"q": "Elgin Theatre", "k": "2", "title": "Elgin Theatre"}).json()
    assert filtered["hits"] and {hit["page_kind"] for hit in filtered["hits"]} == {"disambiguation"}
    params = {"q": "Elgin Theatre", "k": "10"}
    kinds = [hit["page_kind"] for hit in client.get("/api/search", params=params).json()["hits"]]
    page = client.get("/", params=params).text
    assert "disambiguation" in kinds and None in kinds  # the menu and the articles it points to
    assert page.count('<span class="page-kind"') == kinds.count("disambiguation") and "disambiguation page<" in page
    assert '<span class="page-kind"' not in client.get("/", params={"q": HOTEL, "k": "3"}).text


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
        result = retriever.search_with_status(HOTEL, 3, rerank=reranker)
        expected = [SearchHit.from_hit(h, weak=result.is_weak(h)).model_dump(mode="json") for h in result.hits]
        assert body["reranked"] is True and body["hits"] == expected
        plain = reranking.get("/api/search", params={"q": HOTEL, "k": 3, "rerank": "false"}).json()
        assert plain["reranked"] is False and plain["hits"] == expected_hits(retriever, HOTEL, 3)
        page = reranking.get("/", params={"q": HOTEL, "k": "3"}).text
        assert page.count('<li class="result') == 3


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
    assert info["index"] == small_index.name and info["documents"] == 68 and info["passages"] == len(retriever)
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
    assert set(search) == {
        "q",
        "k",
        "nprobe",
        "mode",
        "ef_search",
        "highlight",
        "rerank",
        "min_confidence",
        "title",
        "document",
        "source",
    }
    assert "post" in paths["/api/search/batch"]
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
    assert html.count("<script") == 1  # only the page's own /static/page.js

    html = markup_client.get(f"/passages/{tagged['passage_id']}").text
    assert f'dir="auto" cite="">{escape(text)}</blockquote>' in html and SCRIPT not in html
    assert str(escape(MARKUP_TITLE)) in html and "<b>Markup</b>" not in html and 'href="javascript:' not in html
    assert "{{cite web |title=&lt;b&gt;Markup&lt;/b&gt; &amp; &#34;quotes&#34; |url=javascript:alert(1) |at=" in html


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
        assert 'class="state-empty"' in page.text and "autofocus" in page.text and 'dir="auto"' in page.text
        assert page.text.count("<h1") == 1 and '<h1 class="brand">' in page.text
        assert 'class="results"' not in page.text and "Verbatim passages from 68 articles" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/style.css", "/static/page.js", "/static/favicon.svg"):
        assert client.get(asset).status_code == 200


def test_results_page_shows_verbatim_passages_and_keeps_the_query(client: TestClient, retriever: Retriever) -> None:
    page = client.get("/", params={"q": HOTEL, "k": "3"})
    assert page.status_code == 200 and 'class="state-results"' in page.text
    assert f'value="{HOTEL}"' in page.text and '<input type="hidden" name="k" value="3">' in page.text
    assert page.text.count('<li class="result') == 3 and "content-security-policy" in page.headers
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


def test_results_page_shows_words_first_numbers_on_demand(client: TestClient, retriever: Retriever) -> None:
    """Each hit: its revision's date, "strong match" or "weak match" with the number in the hover text, the scores
    and the three citation styles folded away; hits of one article grouped under its best one."""
    result = retriever.search_with_status(HOTEL, k=10)
    html = client.get("/", params={"q": HOTEL}).text
    assert html.count("<h1") == 1 and f'<h1 class="summary">\n  Passages 1–10 for <q dir="auto">{HOTEL}</q>' in html
    strong = sum(not result.is_weak(h) for h in result.hits)
    assert f"best first · {strong} strong match{'' if strong == 1 else 'es'}" in html
    for hit in result.hits:
        view = html.split(f'id="passage-{hit.passage_id}"', 1)[1].split("</li>", 1)[0]
        assert f'as of <time datetime="{hit.timestamp}">{hit.timestamp[:10]}</time>' in view  # type: ignore[index]
        word = "weak match" if result.is_weak(hit) else "strong match"
        assert f'<span class="match" title="confidence {hit.confidence:.2f}">{word}</span>' in view
        assert f"score {hit.score:.3f}" not in view  # no longer in the meta line: behind "Scores"
        scores = view.split('<details class="scores">', 1)[1].split("</details>", 1)[0]
        assert f"<dd>{hit.score:.3f} " in scores and f"<dd>#{hit.rank_in('dense')} " in scores
        assert f'<a class="in-context" href="/passages/{hit.passage_id}">' in view
        for style in ("plain", "bibtex", "mediawiki"):
            assert f'<pre class="citation" data-style="{style}">{escape(hit.citation(style))}</pre>' in view
    # One <li> per article at the top level; an article's other hits in a closed <details> under it, by rank.
    by_article: dict[int, list[int]] = {}
    for hit in result.hits:
        by_article.setdefault(hit.document_id, []).append(hit.rank)
    assert html.count('<li class="more-from">') == sum(len(ranks) > 1 for ranks in by_article.values()) > 0
    for ranks in by_article.values():
        if len(ranks) > 1:
            assert f"(#{', #'.join(map(str, ranks[1:]))})</span></summary>" in html
    assert "<details open" not in html


def test_more_results_page_through_deeper_ranks(client: TestClient, retriever: Retriever) -> None:
    deep = retriever.search_with_status(HOTEL, k=9).hits
    html = client.get("/", params={"q": HOTEL, "k": "3", "page": "2"}).text
    assert "Passages 4–6 for" in html and "<title>hotel in Prince Edward Island (page 2) – groundsearch" in html
    shown = [int(i) for i in re.findall(r'<li class="result[^"]*" id="passage-(\d+)"', html)]
    articles = [h.document_id for h in deep[3:6]]
    # Ranks 4 to 6, an article's hits after its best one (a stable sort keeps their rank order).
    assert shown == [h.passage_id for h in sorted(deep[3:6], key=lambda h: articles.index(h.document_id))]
    assert '<a class="previous" rel="prev" href="/?q=hotel+in+Prince+Edward+Island&amp;mode=hybrid&amp;k=3">' in html
    assert 'rel="next" href="/?q=hotel+in+Prince+Edward+Island&amp;mode=hybrid&amp;k=3&amp;page=3">More results' in html
    first = client.get("/", params={"q": HOTEL, "k": "3"}).text
    assert 'rel="prev"' not in first and "page=2" in first
    # The last page the server's limit (max_k 100) allows: ranks 91-100 for k=30, and no page after it.
    last = client.get("/", params={"q": HOTEL, "k": "30", "page": "4"}).text
    assert "Passages 91–100 for" in last and 'rel="next"' not in last and "Results stop at rank 100" in last
    for page in ("0", "5", "x"):
        refused = client.get("/", params={"q": HOTEL, "k": "30", "page": page})
        assert refused.status_code == 422 and f"page must be a whole number from 1 to 4, not “{page}”" in refused.text
    # A lexical search that ranks fewer passages than the page starts at.
    few = len(retriever.search("Charlottetown", k=100, mode="lexical"))
    past = client.get("/", params={"q": "Charlottetown", "mode": "lexical", "page": "2"}).text
    assert f"This search ranks only {few} passage" in past and "page 2 would start at rank 11" in past


def test_passage_page_shows_it_in_context(client: TestClient, retriever: Retriever) -> None:
    middle = next(i for i in range(len(retriever)) if len(retriever.context(i).passages) == 5)
    around = retriever.context(middle)
    page = client.get(f"/passages/{middle}")
    assert page.status_code == 200 and "content-security-policy" in page.headers
    html = page.text
    assert html.count("<h1") == 1 and f">{escape(around.passage.title)}</a>\n  </h1>" in html
    texts = [escape(h.text) for h in around.passages]
    positions = [html.index(f'dir="auto" cite="{escape(around.passage.permalink)}">{t}</blockquote>') for t in texts]
    assert positions == sorted(positions)  # in text order, the passage itself in the middle, marked
    assert f'<blockquote class="passage focus" id="passage-{middle}"' in html
    assert f'<a class="previous" rel="prev" href="/passages/{around.previous}">' in html
    assert f'<a class="next" rel="next" href="/passages/{around.next}">' in html
    assert f'href="{escape(around.passage.permalink)}" rel="noreferrer noopener">view this revision</a>' in html
    assert f'<pre class="citation" data-style="bibtex">{escape(around.passage.citation("bibtex"))}</pre>' in html
    for bad, shown in (
        (str(len(retriever)), f"no passage with id {len(retriever)}"),
        ("x1", "no passage with id “x1”"),
        ("²", "no passage with id “²”"),
        (str(2**64), f"no passage with id “{2**64}”"),
    ):
        missing = client.get(f"/passages/{bad}")
        assert missing.status_code == 404 and 'class="state-error"' in missing.text
        assert str(escape(shown[0].upper() + shown[1:])) in missing.text


def test_api_docs_link_back_to_the_page(client: TestClient) -> None:
    assert "[← Back to the search page](/)" in client.get("/openapi.json").json()["info"]["description"]


def test_no_results_state(client: TestClient) -> None:
    """A lexical search for a word no passage holds finds nothing; dense and hybrid always return k hits."""
    page = client.get("/", params={"q": "<zqxwvy>", "mode": "lexical"})
    assert page.status_code == 200 and 'class="state-none"' in page.text
    assert 'No passages found for <q dir="auto">&lt;zqxwvy&gt;</q>' in page.text and 'class="results"' not in page.text
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
