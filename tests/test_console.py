"""The browser console in a real browser: Debian's Chromium, headless, driven by Selenium
through Debian's chromedriver (nothing is downloaded), against a real server with the
digits, churn and diabetes models and API keys on. Each test writes its screenshots to its
own folder (pytest's tmp_path)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ExamplesRepo, Server, TrainedRepo, http

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
KEY = "console-test-key-0123456789abcdef"
# Class names that are markup: the console must show them as text, never run them.
HOSTILE = ["<script>window.pwned=1</script>", "<img src=x onerror=window.pwned=2>"]

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    if os.environ.get("CI"):
        raise RuntimeError("CI must have Debian's chromium and chromium-driver (apt)")
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def repo(
    trained_repo: TrainedRepo, examples_repo: ExamplesRepo, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    target = tmp_path_factory.mktemp("console") / "repo"
    shutil.copytree(trained_repo.path / "digits", target / "digits")
    for name in ("churn", "diabetes"):
        shutil.copytree(examples_repo.path / name, target / name)
    # digits again under a name of its own, with class names that are markup.
    shutil.copytree(trained_repo.path / "digits", target / "marked")
    metadata_path = target / "marked" / "1" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["name"] = "marked"
    metadata["class_names"][:2] = HOSTILE
    metadata_path.write_text(json.dumps(metadata))
    return target


@pytest.fixture(scope="module")
def server(repo: Path, start_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Server:
    folder = tmp_path_factory.mktemp("console-settings")
    keys = folder / "keys.txt"
    keys.write_text(f"{KEY} name=console-tester\n")
    # digits keeps its two newest versions (the test publishes a second one), to compare.
    config = folder / "models.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: digits, base_path: {repo / 'digits'}, version_policy: {{latest: 2}}}}\n"
        + "".join(f"  - {{name: {n}, base_path: {repo / n}}}\n" for n in ("churn", "diabetes"))
        # marked serves its int8 variant (model.int8.onnx): the models page names it.
        + f"  - {{name: marked, base_path: {repo / 'marked'}, variant: int8}}\n"
    )
    started = start_server(
        repo, "--workers", "2", "--api-keys-file", str(keys), "--poll-seconds", "0.5",
        "--model-config", str(config),
    )  # fmt: skip
    started.wait_ready()
    return started


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
                     "--disable-dev-shm-usage", "--no-first-run"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options
    )
    driver.set_page_load_timeout(30)
    _BROWSER.append(driver)
    yield driver
    driver.quit()


_BROWSER: list[Any] = []  # the module's browser, for what a timeout shows


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = condition()
            if found:
                return found
        except Exception:  # the element is not there yet, or is being replaced
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            shown = ""
            if _BROWSER:
                shown = _BROWSER[0].find_element(By.TAG_NAME, "body").text[:3000]
                shown += "\n" + "\n".join(str(e) for e in _BROWSER[0].get_log("browser"))
            raise AssertionError(f"timed out waiting for {what or condition}; the page:\n{shown}")
        time.sleep(0.1)


def text_of(browser: Any) -> str:
    return browser.find_element(By.ID, "main").text


def logged_in(browser: Any, server: Server, page: str = "#/models") -> None:
    """The page, with the key already given (as the first test types it in)."""
    browser.get(f"{server.url}/ui/")
    browser.execute_script("sessionStorage.setItem('tfship-api-key', arguments[0])", KEY)
    browser.get(f"{server.url}/ui/{page}")
    browser.refresh()


def serving(server: Server, name: str) -> int:
    answer = http("GET", server.url + "/ui/api/models", headers={"Authorization": f"Bearer {KEY}"})
    (model,) = [m for m in answer.json()["models"] if m["name"] == name]
    return model["serving"]


def test_the_page_asks_for_a_key_and_lists_every_model(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    browser.get(f"{server.url}/ui/")
    wait_for(lambda: "API keys on" in text_of(browser), what="the key prompt")
    browser.save_screenshot(str(tmp_path / "key-prompt.png"))
    assert browser.switch_to.active_element.get_attribute("id") == "api-key"
    browser.find_element(By.ID, "api-key").send_keys(KEY + Keys.ENTER)
    wait_for(lambda: "diabetes" in text_of(browser), what="the models")
    text = text_of(browser)
    for name in ("churn", "diabetes", "digits", "marked"):
        assert name in text
    assert "AVAILABLE" in text and "accuracy 0.9" in text and "int8" in text
    assert "serving v1 (variant int8)" in text  # marked serves model.int8.onnx
    browser.save_screenshot(str(tmp_path / "models.png"))


def test_a_published_version_and_a_failed_load_appear_without_reload(
    server: Server, browser: Any, repo: Path, tmp_path: Path
) -> None:
    logged_in(browser, server)
    wait_for(lambda: "digits" in text_of(browser), what="the models")
    browser.execute_script("window.sameDocument = true")
    shutil.copytree(repo / "digits" / "1", repo / "digits" / "2")
    wait_for(lambda: "serving v2" in text_of(browser), timeout=30, what="version 2 serving")
    # A version whose ONNX bytes differ from what its metadata.json published.
    shutil.copytree(repo / "diabetes" / "1", repo / "diabetes" / "2")
    onnx = repo / "diabetes" / "2" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-16] + b"\0" * 16)
    wait_for(lambda: "DATA_LOSS" in text_of(browser), timeout=30, what="the failed load")
    assert browser.execute_script("return window.sameDocument") is True  # never reloaded
    assert "END" in text_of(browser)
    browser.save_screenshot(str(tmp_path / "models-live.png"))


def test_a_version_page_shows_training_and_evaluation(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    logged_in(browser, server, f"#/models/digits/{serving(server, 'digits')}")
    wait_for(lambda: "Confusion matrix" in text_of(browser), what="the version page")
    text = text_of(browser)
    expected = [
        "pixels", "float32", "[-1, 8, 8, 1]", "probabilities", "scikit-learn bundled digits",
        "best epoch", "Per class", "int8", "sha256", "ONNX against savedmodel",
    ]  # fmt: skip
    for part in expected:
        assert part in text, part
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure svg polyline")) >= 2
    wait_for(lambda: "against the training baseline" in text_of(browser), what="the drift section")
    browser.save_screenshot(str(tmp_path / "version.png"))


def test_drawing_a_digit_shows_the_class_the_server_answers(
    server: Server, browser: Any, trained_repo: TrainedRepo, tmp_path: Path
) -> None:
    logged_in(browser, server, "#/try/digits")
    pad = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "canvas.pad"), what="the pad")
    # A vertical stroke down the middle: a "1" as a person draws it.
    ActionChains(browser).move_to_element_with_offset(pad, 0, -100).click_and_hold().move_by_offset(
        0, 50
    ).move_by_offset(0, 50).move_by_offset(0, 50).move_by_offset(0, 40).release().perform()
    started = time.monotonic()
    browser.find_element(By.CSS_SELECTOR, "form.try button[type=submit]").click()
    shown = wait_for(lambda: browser.find_element(By.ID, "predicted-class").text, what="a class")
    seconds = time.monotonic() - started
    curl = browser.find_element(By.ID, "curl").get_attribute("value")
    body = json.loads(curl.split(" -d '", 1)[1].rstrip("'"))
    pixels = np.asarray(body["inputs"][0]["data"], dtype=np.float32).reshape(1, 8, 8, 1)
    assert pixels.max() > 8 and pixels.min() == 0  # ink on a blank pad, in digits' 0-16 range
    expected = int(trained_repo.onnx_probabilities(pixels).argmax())
    assert shown == str(expected)
    assert f"answered by version {serving(server, 'digits')}" in text_of(browser)
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.bars rect")) == 5
    # The curl line works as printed (with the key the page was given).
    answer = http(
        "POST", server.url + "/v2/models/digits/infer", body,
        headers={"Authorization": f"Bearer {KEY}"},
    )  # fmt: skip
    assert int(np.argmax(answer.json()["outputs"][0]["data"])) == expected
    browser.save_screenshot(str(tmp_path / "try-digits.png"))
    print(f"digits drawn: class {shown} shown {seconds:.2f} s after the click")


def test_a_churn_form_lists_known_values_and_answers(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    logged_in(browser, server, "#/try/churn")
    plan = Select(wait_for(lambda: browser.find_element(By.ID, "field-plan"), what="the form"))
    assert [o.text for o in plan.options] == ["basic", "premium", "standard"]
    plan.select_by_visible_text("premium")
    for name, value in (("tenure_months", "3"), ("support_calls", "6"), ("monthly_price", "80")):
        field = browser.find_element(By.ID, f"field-{name}")
        field.clear()
        field.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "form.try button[type=submit]").click()
    shown = wait_for(lambda: browser.find_element(By.ID, "predicted-class").text, what="a class")
    assert shown in ("0", "1")
    assert "answered by version 1" in text_of(browser)
    browser.save_screenshot(str(tmp_path / "try-churn.png"))


def test_a_regression_model_answers_its_value(server: Server, browser: Any) -> None:
    logged_in(browser, server, "#/try/diabetes")
    editor = wait_for(lambda: browser.find_element(By.ID, "json-row"), what="the JSON editor")
    row = json.loads(editor.get_attribute("value"))
    assert list(row) == ["features"] and len(row["features"]) == 10  # diabetes' 10 columns
    editor.clear()
    editor.send_keys(json.dumps({"features": [0.02] * 10}))
    browser.find_element(By.CSS_SELECTOR, "form.try button[type=submit]").click()
    shown = wait_for(lambda: browser.find_element(By.ID, "predicted-value").text, what="a value")
    direct = http(
        "POST", server.url + "/v1/models/diabetes:predict", {"instances": [[0.02] * 10]},
        headers={"Authorization": f"Bearer {KEY}"},
    ).json()["predictions"][0][0]  # fmt: skip
    assert float(shown) == pytest.approx(direct, rel=1e-3)
    assert "answered by version 1" in text_of(browser)  # its broken version 2 never served


def test_markup_in_class_names_is_shown_as_text(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    logged_in(browser, server, "#/models/marked/1")
    wait_for(lambda: HOSTILE[0] in text_of(browser), what="the class names as text")
    assert HOSTILE[1] in text_of(browser)
    assert browser.execute_script("return window.pwned") is None
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
    browser.save_screenshot(str(tmp_path / "marked.png"))


def test_live_traffic_and_compare(server: Server, browser: Any, tmp_path: Path) -> None:
    logged_in(browser, server, "#/traffic")
    row = {"instances": [np.zeros((8, 8, 1)).tolist()]}
    for _ in range(20):
        http("POST", server.url + "/v1/models/digits:predict", row,
             headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    wait_for(lambda: "requests/s" in text_of(browser) and "digits" in text_of(browser),
             timeout=20, what="the traffic table")  # fmt: skip
    browser.save_screenshot(str(tmp_path / "traffic.png"))
    browser.get(f"{server.url}/ui/#/compare/digits")
    wait_for(lambda: "Per class" in text_of(browser), what="the comparison")
    if serving(server, "digits") == 2:  # after the publish test: its two versions side by side
        assert "v1" in text_of(browser) and "v2" in text_of(browser)
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.confusion")) == 2
    browser.save_screenshot(str(tmp_path / "compare.png"))


def test_keyboard_and_phone_width(server: Server, browser: Any, tmp_path: Path) -> None:
    logged_in(browser, server)
    wait_for(lambda: "digits" in text_of(browser), what="the models")
    # After a page is shown the focus is on its content (a keyboard user starts there);
    # from the top of the page, Tab walks the brand, then the pages.
    browser.execute_script("document.querySelector('.brand').focus()")
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Models"
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Live traffic"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(lambda: "Live traffic" in text_of(browser), what="the traffic page")
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{server.url}/ui/#/models/digits/{serving(server, 'digits')}")
        wait_for(lambda: "Confusion matrix" in text_of(browser), what="the version page")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"the page is {overflow} px wider than a phone"
        browser.save_screenshot(str(tmp_path / "phone.png"))
    finally:
        browser.set_window_size(1280, 800)
