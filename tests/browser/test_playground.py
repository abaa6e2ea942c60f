"""The playground in a real browser (Debian's chromium, headless, driven by Playwright) against a live
server on loopback: the bars equal the HF API's answer, errors show inline as the server words them, the API
key path, two models switched, keyboard use, a phone-width window, and an accessible name on every control."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.servers import free_ports, server_env, wait_ready

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "playground-key-1"


def _serve(bert_dir: Path, roberta_dir: Path, *extra: str) -> Iterator[str]:
    (port,) = free_ports(1)
    models = [f"--model=bert={bert_dir}", f"--model=roberta={roberta_dir}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskserve", "serve", *models,
         "--host=127.0.0.1", f"--http_port={port}", "--enable_grpc=false", *extra],
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, base)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def server(bert_dir: Path, roberta_dir: Path) -> Iterator[str]:
    yield from _serve(bert_dir, roberta_dir)


@pytest.fixture(scope="module")
def keyed_server(bert_dir: Path, roberta_dir: Path) -> Iterator[str]:
    yield from _serve(bert_dir, roberta_dir, f"--api_key={KEY}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/install.sh --dev installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def _api(base: str, model: str, text: str, parameters: dict[str, Any] | None = None) -> list[Any]:
    body: dict[str, Any] = {"inputs": text}
    if parameters:
        body["parameters"] = parameters
    answer = httpx.post(f"{base}/models/{model}", json=body, timeout=60, trust_env=False)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _bars(page: Any) -> list[tuple[str, str]]:
    page.wait_for_selector("#results .candidate")
    tokens = page.locator("#results .candidate .token").all_inner_texts()
    percents = page.locator("#results .candidate .percent").all_inner_texts()
    return list(zip(tokens, percents, strict=True))


def _percent(score: float) -> str:
    """As the page writes a probability: 12.3%, or below 0.1 % in scientific form as JavaScript writes it."""
    if score >= 0.001:
        return f"{score * 100:.1f}%"
    if score == 0:
        return "0%"
    mantissa, exponent = f"{score * 100:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}%"


def _expected(answer: list[Any]) -> list[tuple[str, str]]:
    return [(c["token_str"].strip(), _percent(c["score"])) for c in answer]


def test_fill_mask_shows_the_hf_apis_answer_as_bars(server: str, page: Any, tmp_path: Path) -> None:
    page.goto(f"{server}/playground")
    text = page.get_by_label("Text", exact=True)
    assert "[MASK]" in text.input_value()  # prefilled with the model's own mask token
    text.fill("the [MASK] sat on the mat .")
    page.get_by_label("top_k", exact=True).fill("4")
    page.get_by_role("button", name="Fill mask").click()
    bars = _bars(page)
    assert bars == _expected(_api(server, "bert", "the [MASK] sat on the mat .", {"top_k": 4}))
    best = page.locator("#results .best").first.inner_text()
    assert best == _api(server, "bert", "the [MASK] sat on the mat .", {"top_k": 4})[0]["sequence"]
    shot = tmp_path / "playground.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targets_and_word_options_reach_the_api(server: str, page: Any) -> None:
    page.goto(f"{server}/playground")
    page.get_by_label("Text", exact=True).fill("the [MASK] sat on the mat .")
    page.get_by_label("Targets", exact=True).fill("cat, catmatdog")
    page.get_by_label("Score targets as whole words").check()
    page.get_by_role("button", name="Fill mask").click()
    expected = _api(
        server,
        "bert",
        "the [MASK] sat on the mat .",
        {"top_k": 5, "targets": ["cat", "catmatdog"], "target_scoring": "word"},
    )
    assert _bars(page) == _expected(expected)


def test_an_input_without_a_mask_shows_the_servers_error(server: str, page: Any) -> None:
    page.goto(f"{server}/playground")
    page.get_by_label("Text", exact=True).fill("no mask here")
    page.get_by_role("button", name="Fill mask").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "No mask_token ([MASK]) found on the input" in alert.inner_text()
    assert page.locator("#results .candidate").count() == 0


def test_two_models_switched(server: str, page: Any) -> None:
    page.goto(f"{server}/playground")
    page.get_by_label("Model", exact=True).select_option("roberta")
    assert page.locator("#mask-token").inner_text() == "<mask>"
    text = page.get_by_label("Text", exact=True)
    assert "<mask>" in text.input_value()
    text.fill("the  sat on the mat .")
    # The mask goes where the cursor is: after "the ".
    text.evaluate("t => t.setSelectionRange(4, 4)")
    page.get_by_role("button", name="Insert mask").click()
    assert text.input_value() == "the <mask> sat on the mat ."
    # Ctrl+Enter submits from the text box.
    text.press("Control+Enter")
    assert _bars(page) == _expected(_api(server, "roberta", "the <mask> sat on the mat .", {"top_k": 5}))


def test_the_api_key_path(keyed_server: str, page: Any) -> None:
    page.goto(f"{keyed_server}/playground")  # the page itself needs no key
    page.get_by_label("Text", exact=True).fill("the [MASK] sat on the mat .")
    page.get_by_role("button", name="Fill mask").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "no API key was sent" in alert.inner_text()
    page.get_by_label("API key", exact=True).fill(KEY)
    page.get_by_role("button", name="Fill mask").click()
    page.wait_for_selector("#results .candidate")
    assert page.get_by_role("alert").is_hidden()


def test_a_phone_width_window_never_scrolls_sideways(server: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(f"{server}/playground")
        page.get_by_label("Text", exact=True).fill(
            "the [MASK] sat on the mat . " + "and a very long sentence " * 6
        )
        page.get_by_label("top_k", exact=True).fill("10")
        page.get_by_role("button", name="Fill mask").click()
        _bars(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
    finally:
        context.close()


def test_every_control_has_an_accessible_name(server: str, page: Any) -> None:
    page.goto(f"{server}/playground")
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')].filter((el) => {
            const labelled = el.labels && el.labels.length > 0;
            const aria = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
            const text = el.tagName === 'BUTTON' && el.textContent.trim();
            return !(labelled || aria || text);
        }).map((el) => el.outerHTML)"""
    )
    assert unnamed == []
    for role, name in [("combobox", "Model"), ("textbox", "Text"), ("spinbutton", "top_k"),
                       ("textbox", "Targets"), ("button", "Fill mask"), ("button", "Insert mask"),
                       ("checkbox", "Decode several masks jointly"), ("radio", "Fill mask"),
                       ("radio", "Score")]:  # fmt: skip
        assert page.get_by_role(role, name=name).count() == 1, (role, name)
    page.get_by_role("radio", name="Score").check()
    assert page.get_by_role("combobox", name="Metric").count() == 1


def test_the_playground_can_be_turned_off(bert_dir: Path, roberta_dir: Path) -> None:
    for base in _serve(bert_dir, roberta_dir, "--enable_playground=false"):
        assert httpx.get(f"{base}/playground", trust_env=False).status_code == 404


def test_api_docs_render_without_a_cdn(server: str, page: Any) -> None:
    # The browser reaches nothing but this server: Swagger UI and ReDoc render from its own assets.
    page.route(lambda url: not url.startswith(server), lambda route: route.abort())
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() >= 10
    page.goto(f"{server}/redoc")
    page.wait_for_selector("text=Hugging Face Inference API")


def test_the_form_takes_defaults_and_bounds_from_the_servers_declaration(server: str, page: Any) -> None:
    from maskserve.params import FillMaskParams, bounds

    declared = bounds(FillMaskParams)
    page.goto(f"{server}/playground")
    top_k = page.get_by_label("top_k", exact=True)
    pieces = page.get_by_label("Most pieces per word")
    assert top_k.input_value() == str(declared["top_k"]["default"])
    assert top_k.get_attribute("min") == str(declared["top_k"]["min"])
    assert pieces.input_value() == str(declared["max_subwords"]["default"])
    assert pieces.get_attribute("max") == str(declared["max_subwords"]["max"])


def test_a_tiny_probability_shows_its_value_and_joint_labels_are_whole(server: str, page: Any) -> None:
    text = "the [MASK] [MASK] on the mat ."
    answer = _api(server, "bert", text, {"decoding": "joint", "top_k": 3})
    page.goto(f"{server}/playground")
    page.get_by_label("Text", exact=True).fill(text)
    page.get_by_label("top_k", exact=True).fill("3")
    page.get_by_label("Decode several masks jointly").check()
    page.get_by_role("button", name="Fill mask").click()
    page.wait_for_selector("#results .candidate")
    labels = page.locator("#results .candidate .token")
    assert labels.all_inner_texts() == [" ".join(t.strip() for t in h["token_strs"]) for h in answer]
    for index in range(labels.count()):  # nothing cut: every label fits its box
        assert labels.nth(index).evaluate("e => e.scrollWidth <= e.clientWidth")
    percents = page.locator("#results .candidate .percent").all_inner_texts()
    assert percents == [_percent(h["score"]) for h in answer]
    assert any("e-" in p for p in percents)  # the random tiny model's joint scores are far below 0.1 %


def test_score_mode_shows_each_words_log_probability(server: str, page: Any, tmp_path: Path) -> None:
    text = "the cat sat on the mat ."
    answer = httpx.post(
        f"{server}/models/bert/score",
        json={"inputs": text, "parameters": {"words": True, "metric": "token"}},
        timeout=60,
        trust_env=False,
    ).json()
    page.goto(f"{server}/playground")
    page.get_by_role("radio", name="Score").check()
    assert page.get_by_role("spinbutton", name="top_k").is_hidden()  # fill-mask options are put away
    page.get_by_label("Text", exact=True).fill(text)
    page.get_by_role("combobox", name="Metric").select_option("token")
    page.get_by_role("button", name="Score").click()
    page.wait_for_selector("#results .sentence .word")
    words = page.locator("#results .sentence .word")
    assert words.all_inner_texts() == [w["word"] for w in answer["words"]]
    assert page.locator("#results .sentence").inner_text() == text  # the sentence, whole, in its order
    shown = page.locator("#results .candidate .logprob").all_inner_texts()
    assert shown == [f"{w['logprob']:.3f}" for w in answer["words"]]
    colours = [
        words.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(words.count())
    ]
    worst = min(range(len(answer["words"])), key=lambda i: answer["words"][i]["logprob"])
    assert len(set(colours)) > 1  # words differ at a glance
    assert colours[worst] == "rgb(230, 69, 51)"  # the most surprising word in the deepest red
    assert f"{answer['pseudo_perplexity']:.2f}" in page.locator("#results .totals").inner_text()
    page.screenshot(path=str(tmp_path / "score.png"), full_page=True)
