"""The web explorer (``/explorer``) in a real browser: Debian's Chromium driven through its
chromedriver (Selenium), against a live gateway serving real ZTF alerts, Rubin's real v10
sample and simulated alerts of both surveys.

What the page must show is read here from the store or computed independently (astropy
for cones); the page is driven as a person would (typing, clicking, keys).  Screenshots
of every page go to ``$NIGHTJAR_SCREENSHOTS`` (default ``bench/out/explorer``).
Selenium blocks, and the gateway runs in the test's event loop: every browser step runs in
a worker thread (``call``).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.time import Time

from nightjar.context.tns import TnsClient
from nightjar.context.tns_report import ReportConfig, TnsReporter
from nightjar.runner.ingest import RawInput, expand_paths, iter_inputs
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.ztf.simulate import AlertSimulator
from services.gateway.app import GatewayConfig
from services.gateway.live import StoreFeed
from tests.conftest import ROOT, as_inputs, unavailable
from tests.fake_tns import FakeTns
from tests.gateway_env import API_KEY, API_USER, ingest_in_another_process, live_gateway
from tests.test_client import _lsst_inputs
from tests.test_filters import Deployment, deployment
from tools import gen_explorer

pytestmark = pytest.mark.shared
T = TypeVar("T")
SHOTS = Path(os.environ.get("NIGHTJAR_SCREENSHOTS", ROOT / "bench" / "out" / "explorer"))
#: simulated ZTF alerts: all but the held-back ones are stored before the page opens
HELD_BACK = 3
TNS_BOT = (4242, "nightjar_explorer_bot", "explorer-bot-key")


async def call(function: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(function, *args)


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        unavailable("Chromium and chromedriver are needed (apt-get install chromium "
                    "chromium-driver; .ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(chromedriver)), options=options)


@pytest.fixture(scope="module")
def held_back() -> list[tuple[str, int, bytes]]:
    """The simulated ZTF alerts, the last HELD_BACK of one object last (kept for later)."""
    packets = list(AlertSimulator(seed=33).packets(300))
    counts: dict[str, int] = {}
    for oid, _, _ in packets:
        counts[oid] = counts.get(oid, 0) + 1
    target = max(counts, key=lambda o: (counts[o], o))
    mine = [p for p in packets if p[0] == target]
    return [p for p in packets if p[0] != target] + mine


@pytest.fixture(scope="module")
async def dep(mongo_uri: str, shared_data: Path, held_back: list[tuple[str, int, bytes]],
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    home = tmp_path_factory.mktemp("explorer")
    async with deployment(mongo_uri, home) as d:
        await d.ingest(list(iter_inputs(expand_paths([shared_data / "ztf" / "alerts"]))))
        await d.ingest(as_inputs(held_back[:-HELD_BACK]))
        await d.ingest(_lsst_inputs(shared_data, held_back))
        yield d


@pytest.fixture(scope="module")
async def fake_tns() -> AsyncIterator[tuple[FakeTns, TnsReporter]]:
    """The project's fake TNS and the broker's reporter pointed at it."""
    fake = FakeTns(TNS_BOT[0], TNS_BOT[1], TNS_BOT[2], pending_polls=1)
    config = ReportConfig(reporting_group_id=66, discovery_data_source_id=None,
                          reporter="Nightjar explorer test", instruments={"ZTF": 196},
                          filters={"ZTF": {"g": 110, "r": 111, "i": 112}},
                          exposure_s={"ZTF": 30.0})
    async with fake.serve() as tns_url, httpx.AsyncClient() as http:
        yield fake, TnsReporter(TnsClient(http, *TNS_BOT), config, f"{tns_url}/api",
                                reply_interval_s=0.05)


@pytest.fixture(scope="module")
async def url(dep: Deployment, fake_tns: tuple[FakeTns, TnsReporter]) -> AsyncIterator[str]:
    async with live_gateway(dep, GatewayConfig(api_keys={API_KEY: API_USER},
                                               rate_anonymous=1e6),
                            feed=StoreFeed(dep.store, poll_s=0.02), filters=dep.service,
                            watch=dep.watch, tns=fake_tns[1]) as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = _driver()
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 15.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def by_css(driver: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, css))


def shown(css: str) -> Callable[[Any], Any]:
    return lambda d: (found := by_css(d, css)) and found[0].is_displayed() and found[0]


def result_oids(driver: Any) -> list[str]:
    # The count carries the search its rows answer: wait for the one in the address bar,
    # not whatever an earlier search left on the page.
    wait_for(driver, lambda d: d.execute_script(
        "const c = document.querySelector('#result-count');"
        "return c !== null && c.dataset.search === location.search;"))
    return [row.find_elements("css selector", "td")[0].text
            for row in by_css(driver, "table.results tbody tr")]


def severe_logs(driver: Any) -> list[str]:
    """Console errors but the expected offline ones (Aladin Lite from CDS)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "aladin.cds.unistra.fr" not in e["message"]]


async def _objects(dep: Deployment, query: dict[str, Any]) -> list[dict[str, Any]]:
    return [d async for d in dep.store.db["objects"].find(query)]


async def _richest(dep: Deployment, survey: str) -> str:
    """The object of a survey with the most detections that has stamps and an upper limit."""
    docs = sorted(await _objects(dep, {"survey": survey}), key=lambda d: (-d["ndet"], d["_id"]))
    for doc in docs:
        has_limit = await dep.store.db["non_detections"].count_documents({"oid": doc["_id"]})
        stamps = await dep.store.db["detections"].count_documents(
            {"oid": doc["_id"], "has_stamp": True})
        if has_limit and stamps >= 2:
            return str(doc["_id"])
    raise AssertionError(f"no {survey} object with upper limits and two stamps")


async def test_search_by_id_coordinates_and_form_with_deep_links(
        url: str, dep: Deployment, browser: Any) -> None:
    ztf = await _richest(dep, "ZTF")
    doc = (await _objects(dep, {"_id": ztf}))[0]
    centre = SkyCoord(doc["meanra"] * u.deg, doc["meandec"] * u.deg)
    every = await _objects(dep, {})
    within = {str(d["_id"]) for d in every if centre.separation(SkyCoord(
        d["meanra"] * u.deg, d["meandec"] * u.deg)).arcsec <= 30.0}
    lsst_bright = sorted(str(d["_id"]) for d in every
                         if d["survey"] == "LSST" and d["ndet"] >= 10)
    assert lsst_bright and ztf in within

    def scenario(d: Any) -> None:
        from selenium.webdriver.common.keys import Keys

        d.get(f"{url}/explorer/search")
        bar = wait_for(d, shown("#q"))
        bar.send_keys(ztf.lower(), Keys.ENTER)  # ids are recognised whatever their case
        wait_for(d, lambda d: by_css(d, "#object-id") and by_css(d, "#object-id")[0].text == ztf)
        assert d.current_url == f"{url}/explorer/object/{ztf}"
        # sexagesimal coordinates with a radius
        d.get(f"{url}/explorer/search")
        bar = wait_for(d, shown("#q"))
        bar.send_keys(f"{centre.to_string('hmsdms', sep=':', precision=3)} 30\"", Keys.ENTER)
        wait_for(d, lambda d: "ra=" in d.current_url)
        assert set(result_oids(d)) == within
        d.save_screenshot(str(SHOTS / "search.png"))
        # the form writes the same parameters; the URL alone reproduces the search
        d.get(f"{url}/explorer/search")
        by_css(d, "details.form-details summary")[0].click()
        from selenium.webdriver.support.ui import Select
        Select(wait_for(d, shown("select[name=survey]"))).select_by_visible_text("LSST")
        by_css(d, "input[name=ndetmin]")[0].send_keys("10")
        by_css(d, ".search-form button[type=submit]")[0].click()
        wait_for(d, lambda d: "ndetmin=10" in d.current_url and "survey=LSST" in d.current_url)
        assert sorted(result_oids(d)) == lsst_bright
        link = d.current_url
        d.get(f"{url}/explorer/live")
        d.get(link)
        assert sorted(result_oids(d)) == lsst_bright
        # a bar that is neither an id nor coordinates says so, and goes nowhere
        d.get(f"{url}/explorer/search")
        bar = wait_for(d, shown("#q"))
        bar.send_keys("M31 tomorrow", Keys.ENTER)
        assert "neither an object id nor coordinates" in wait_for(d, shown("#q-error")).text
        assert d.current_url == f"{url}/explorer/search"
        assert severe_logs(d) == []

    await call(scenario, browser)


PANELS = ["lc", "stamps-panel", "probabilities", "anomaly", "vetting", "sky", "xmatch",
          "features-panel", "links", "snippets"]


async def test_object_pages_of_both_surveys_show_every_panel(
        url: str, dep: Deployment, browser: Any) -> None:
    oids = {survey: await _richest(dep, survey) for survey in ("ZTF", "LSST")}
    stamps = {s: sorted([d async for d in dep.store.db["detections"].find(
        {"oid": oid, "has_stamp": True})], key=lambda d: (d["mjd"], d["_id"]))
        for s, oid in oids.items()}

    def scenario(d: Any) -> dict[str, Any]:
        seen = {}
        for survey, oid in oids.items():
            d.get(f"{url}/explorer/object/{oid}")
            wait_for(d, shown("#lightcurve"))
            missing = [p for p in PANELS if not by_css(d, f"section#{p}")]
            assert missing == [], f"{survey}: panels missing {missing}"
            # the three cutouts of the latest epoch, drawn from their FITS files
            wait_for(d, lambda d: len(by_css(d, "#stamps canvas")) == 3)
            wait_for(d, lambda d: d.execute_script(
                "return [...document.querySelectorAll('#stamps canvas')].every(c => c.width > 0)"))
            fallback = wait_for(d, shown("#aladin-fallback"), 20)
            assert "could not be loaded" in fallback.text
            d.save_screenshot(str(SHOTS / f"object-{survey.lower()}.png"))
            header = by_css(d, ".obj-header")[0].text
            links = [a.get_attribute("href") for a in by_css(d, "#links a")]
            downloads = d.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const csv = document.querySelector('.downloads a').href;
                const fits = document.querySelector('#stamps figure a').href;
                Promise.all([fetch(csv).then(r => r.text()),
                             fetch(fits).then(r => r.arrayBuffer())])
                  .then(([c, f]) => done([c.split('\\n').slice(0, 2),
                        String.fromCharCode(...new Uint8Array(f).slice(0, 30)),
                        document.querySelector('#stamps').dataset.candid]));""")
            seen[survey] = {"header": header, "links": links, "downloads": downloads,
                            "bars": len(by_css(d, "#probabilities .bar")),
                            "features": len(by_css(d, "#features tbody tr"))}
        assert severe_logs(d) == []
        return seen

    seen = await call(scenario, browser)
    for survey, oid in oids.items():
        got = seen[survey]
        doc = (await _objects(dep, {"_id": oid}))[0]
        assert oid in got["header"] and survey in got["header"]
        assert f"{doc['meanra']:.6f}" in got["header"]
        for name in ("ALeRCE", "Fink", "Lasair", "ANTARES", "wis-tns", "simbad", "ned.ipac",
                     "legacysurvey", "vizier"):
            assert any(name.lower() in link.lower() for link in got["links"]), name
        first_lines, fits_head, candid = got["downloads"]
        assert oid in first_lines[1] or "oid" in first_lines[0]
        assert fits_head.startswith("SIMPLE  =")
        assert candid == str(stamps[survey][-1]["candid"])  # the latest epoch first
        rows = await dep.store.db["probabilities"].count_documents({"oid": oid})
        assert got["bars"] == rows
        feature_doc = await dep.store.db["features"].find_one({"_id": oid})
        assert got["features"] == len(feature_doc["values"]) if feature_doc else True


async def test_a_hidden_band_hides_its_limits_and_a_clicked_point_shows_its_stamps(
        url: str, dep: Deployment, browser: Any) -> None:
    oid = await _richest(dep, "ZTF")
    first_stamp = await dep.store.db["detections"].find_one(
        {"oid": oid, "has_stamp": True}, sort=[("mjd", 1)])
    assert first_stamp is not None
    limit = await dep.store.db["non_detections"].find_one({"oid": oid})
    band = {1: "g", 2: "r", 3: "i"}[limit["fid"]]

    def scenario(d: Any) -> tuple[str, str, str, str]:
        from selenium.webdriver.common.action_chains import ActionChains

        d.get(f"{url}/explorer/object/{oid}")
        plot = wait_for(d, shown("#lightcurve"))
        before = plot.get_attribute("data-visible")
        by_css(d, f"input[data-band='ZTF:{band}']")[0].click()
        after = wait_for(d, lambda d: (v := plot.get_attribute("data-visible")) != before and v)
        by_css(d, f"input[data-band='ZTF:{band}']")[0].click()
        wait_for(d, lambda d: plot.get_attribute("data-visible") == before)

        def where() -> list[float]:
            return list(d.execute_script("""
                const u = document.getElementById('lightcurve').__uplot;
                return [u.valToPos(arguments[0], 'x'), u.valToPos(arguments[1], 'y')];""",
                                         first_stamp["mjd"], first_stamp["magpsf"]))

        # the band's return rescales the plot after the page renders: wait until the
        # point stays put, then click the first stamped detection where the plot draws it
        settled: list[list[float]] = [where()]

        def still(_: Any) -> bool:
            time.sleep(0.1)
            settled.append(where())
            return settled[-1] == settled[-2]
        wait_for(d, still)
        x, y = settled[-1]
        over = by_css(d, "#lightcurve .u-over")[0]
        dx, dy = int(x - over.size["width"] / 2), int(y - over.size["height"] / 2)
        ActionChains(d).move_to_element_with_offset(over, dx, dy).click().perform()
        picked = wait_for(d, lambda d: (c := by_css(d, "#stamps")[0].get_attribute(
            "data-candid")) == str(first_stamp["candid"]) and c)
        return before, after, picked, d.execute_script(
            "return document.getElementById('stamp-epoch').value")

    before, after, picked, selected = await call(scenario, browser)
    assert f"ZTF:{band}:UPPER_LIMIT" in before.split()
    assert not any(key.startswith(f"ZTF:{band}:") for key in after.split())
    assert any(key.startswith("ZTF:") for key in after.split())  # the other band stays
    assert picked == selected == str(first_stamp["candid"])


async def test_an_object_vetted_with_its_key_is_reviewed_and_reported_to_tns(
        url: str, dep: Deployment, browser: Any,
        fake_tns: tuple[FakeTns, TnsReporter]) -> None:
    fake, _ = fake_tns
    oid = await _richest(dep, "ZTF")

    def scenario(d: Any) -> tuple[Any, str, str]:
        import json

        from selenium.webdriver.common.keys import Keys

        d.get(f"{url}/explorer/search")
        d.execute_script("localStorage.setItem('nightjar.apiKey', arguments[0])", API_KEY)
        d.get(f"{url}/explorer/tns/{oid}")
        problems = wait_for(d, shown("#tns-problems")).text
        assert "not vetted" in problems
        assert not by_css(d, "#tns-send")[0].is_enabled()
        # vet on the object page with the SN Hunter key, then follow its link
        d.get(f"{url}/explorer/object/{oid}")
        wait_for(d, shown("#lightcurve"))
        by_css(d, "body")[0].send_keys("s")
        assert "saved" in wait_for(d, shown("#vet-status")).text
        by_css(d, "#tns-link")[0].click()
        wait_for(d, shown("#tns-summary"))
        assert not by_css(d, "#tns-problems")
        remarks = by_css(d, "textarea[name=remarks]")[0]
        remarks.send_keys(Keys.CONTROL, "a")
        remarks.send_keys("Rising fast; reported from the explorer test")
        assert not by_css(d, "#tns-send")[0].is_enabled()  # review the changed draft first
        by_css(d, ".tns-options button[type=submit]")[0].click()
        wait_for(d, lambda d: "explorer test" in by_css(d, "#tns-json")[0].text
                 and by_css(d, "#tns-send")[0].is_enabled())
        reviewed = json.loads(by_css(d, "#tns-json")[0].text)
        discovery = by_css(d, "#tns-discovery")[0].text
        d.save_screenshot(str(SHOTS / "tns.png"))
        by_css(d, "#tns-send")[0].click()
        status = wait_for(d, lambda d: (s := by_css(d, "#tns-status")) and "Sent" in s[0].text
                          and s[0].text)
        wait_for(d, lambda d: by_css(d, "#tns-reports tbody tr"))
        row = by_css(d, "#tns-reports tbody tr")[0].text
        assert not by_css(d, "#tns-send")[0].is_enabled()  # reported once
        assert severe_logs(d) == []
        return reviewed, discovery, status + " | " + row

    reviewed, discovery, shown_after = await call(scenario, browser)
    assert list(fake.reports.values()) == [reviewed["at_report"]["0"]]
    (report_id,) = fake.reports
    assert f"report {report_id}, ACCEPTED as 2026aaa" in shown_after
    first = min([d async for d in dep.store.db["detections"].find(
        {"oid": oid, "isdiffpos": {"$in": ["t", "1"]}})], key=lambda d: d["mjd"])
    assert discovery == reviewed["at_report"]["0"]["discovery_datetime"]
    assert abs((Time(discovery, scale="utc") - Time(first["mjd"], format="mjd")).sec) < 0.002
    stored = await dep.store.tns_report(report_id)
    assert stored is not None and stored["objname"] == "2026aaa" and stored["user"] == API_USER


async def test_a_filter_written_in_the_page_is_saved_and_matches(
        url: str, dep: Deployment, browser: Any, mongo_uri: str, tmp_path: Path,
        held_back: list[tuple[str, int, bytes]]) -> None:
    expression = "alert.band == 'r' || alert.band == 'g'"

    def write(d: Any) -> str:
        d.get(f"{url}/explorer/filters")
        d.execute_script("localStorage.setItem('nightjar.apiKey', arguments[0])", API_KEY)
        d.get(f"{url}/explorer/filters")
        area = wait_for(d, shown("#filter-expression"))
        area.clear()
        area.send_keys("alert.band ==")  # the checker's error, inline
        error = wait_for(d, lambda d: "line 1" in (t := by_css(d, "#filter-check")[0].text) and t)
        area.clear()
        area.send_keys(expression)
        wait_for(d, lambda d: "dry run over" in by_css(d, "#filter-check")[0].text)
        by_css(d, "#filter-name")[0].send_keys("explorer-bands")
        by_css(d, ".filter-editor button[type=submit]")[0].click()
        wait_for(d, lambda d: by_css(d, "tr[data-filter='explorer-bands']"), 15)
        d.save_screenshot(str(SHOTS / "filters.png"))
        return str(error)

    error = await call(write, browser)
    assert "line 1" in error
    saved = await dep.store.db["filters"].find_one({"name": "explorer-bands"})
    assert saved is not None and saved["owner"] == API_USER
    # the saved filter matches what is ingested next (a separate process)
    alerts = tmp_path / "alerts"
    alerts.mkdir()
    for i, (_, _, raw) in enumerate(held_back[-HELD_BACK:-1]):
        (alerts / f"{i}.avro").write_bytes(raw)
    await ingest_in_another_process(dep, mongo_uri, alerts, tmp_path, 10)
    matches = await dep.store.db["filter_matches"].count_documents(
        {"filter_id": saved["_id"]})
    assert matches == HELD_BACK - 1


async def test_a_new_alert_appears_on_the_open_page_and_in_the_live_feed_without_reload(
        url: str, dep: Deployment, browser: Any, mongo_uri: str, tmp_path: Path,
        held_back: list[tuple[str, int, bytes]]) -> None:
    oid = held_back[-1][0]
    before = await dep.store.db["detections"].count_documents({"oid": oid})
    live = await call(_driver)
    try:
        def open_pages() -> None:
            browser.get(f"{url}/explorer/object/{oid}")
            wait_for(browser, shown("#lightcurve"))
            wait_for(browser, lambda d: "live" in by_css(d, "#connection")[0].text)
            browser.execute_script("window.__reloadMarker = 1")  # gone if the page reloads
            live.get(f"{url}/explorer/live")
            wait_for(live, lambda d: "live" in by_css(d, "#connection")[0].text)

        await call(open_pages)
        await asyncio.sleep(1.0)  # the subscriptions are registered
        alerts = tmp_path / "alerts"
        alerts.mkdir()
        (alerts / "last.avro").write_bytes(held_back[-1][2])
        await ingest_in_another_process(dep, mongo_uri, alerts, tmp_path, 10)
        stored = time.monotonic()
        # the last alert's history brings any earlier epoch not stored yet, too
        new = await dep.store.db["detections"].count_documents({"oid": oid}) - before

        def seen() -> tuple[float, float, str, Any]:
            wait_for(browser, shown("#new-marker"), 10)
            on_page = time.monotonic() - stored
            wait_for(live, lambda d: by_css(d, f"#live-cards li[data-oid='{oid}']"), 10)
            in_feed = time.monotonic() - stored
            live.save_screenshot(str(SHOTS / "live.png"))
            browser.save_screenshot(str(SHOTS / "object-live.png"))
            return (on_page, in_feed, by_css(browser, "#new-marker")[0].text,
                    browser.execute_script("return window.__reloadMarker"))

        on_page, in_feed, marker, not_reloaded = await call(seen)
    finally:
        await call(live.quit)
    assert new >= 1 and marker.startswith(f"{new} new since opened")
    assert not_reloaded == 1
    assert on_page <= 2.0 and in_feed <= 2.0, (on_page, in_feed)


async def test_a_dropped_websocket_reconnects_and_fetches_what_it_missed(
        url: str, dep: Deployment, browser: Any) -> None:
    from nightjar.runner.ingest import RawInput
    from nightjar.surveys.interface import AlertSource

    packets: dict[str, list[bytes]] = {}
    for oid_, _, raw in AlertSimulator(seed=77).packets(80):
        packets.setdefault(oid_, []).append(raw)
    stored = {str(d["_id"]) async for d in dep.store.db["objects"].find({}, {"_id": 1})}
    oid = max((o for o in packets if o not in stored), key=lambda o: len(packets[o]))
    mine = packets[oid]
    assert len(mine) >= 2
    await dep.ingest([RawInput(raw, AlertSource("file", path=f"drop/{i}"))
                      for i, raw in enumerate(mine[:-1])])

    def open_and_drop() -> None:
        browser.get(f"{url}/explorer/object/{oid}")
        wait_for(browser, lambda d: "live" in by_css(d, "#connection")[0].text)
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        browser.execute_script("window.__nightjar.dropConnection()")
        wait_for(browser, lambda d: "reconnecting" in by_css(d, "#connection")[0].text)

    await call(open_and_drop)
    await dep.ingest([RawInput(mine[-1], AlertSource("file", path="drop/last"))])
    await asyncio.sleep(1.5)  # stored while the page is cut off

    def reconnect() -> str:
        still_down = by_css(browser, "#connection")[0].text
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        wait_for(browser, shown("#new-marker"), 15)
        return str(still_down)

    still_down = await call(reconnect)
    assert "reconnecting" in still_down


async def test_pages_are_accessible_and_within_budget(url: str, dep: Deployment,
                                                      browser: Any) -> None:
    gen_explorer.install()
    axe = (gen_explorer.SOURCE / "node_modules" / "axe-core" / "axe.min.js").read_text()
    lsst = await _richest(dep, "LSST")
    points = await _lightcurve_points(url, lsst)
    pages = ["/explorer/search", f"/explorer/object/{lsst}", "/explorer/live",
             "/explorer/filters", "/explorer/status"]

    def scenario(d: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path in pages:
            for theme in ("dark", "light", "observer"):
                d.get(f"{url}{path}")
                d.execute_script("localStorage.setItem('nightjar.theme', arguments[0])", theme)
                d.get(f"{url}{path}")
                wait_for(d, shown("main h1, main #object-id"))
                if "object" in path:
                    wait_for(d, lambda d: d.execute_script("return window.__nightjarTiming"))
                if path.endswith("status"):
                    wait_for(d, shown("#ingest"))
                    if theme == "dark":
                        d.save_screenshot(str(SHOTS / "status.png"))
                d.execute_script(axe)
                result = d.execute_async_script("""
                    const done = arguments[arguments.length - 1];
                    axe.run(document, {resultTypes: ['violations']}).then(r => done(
                      r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
                       .map(v => v.id + ': ' + v.nodes.slice(0, 3)
                                  .map(n => n.target.join(' ')).join(', '))));""")
                out[f"{path} {theme}"] = result
            if "object" in path:
                out["timing"] = d.execute_script("return window.__nightjarTiming")
        return out

    found = await call(scenario, browser)
    timing = found.pop("timing")
    assert {page: v for page, v in found.items() if v} == {}
    assert timing["points"] == points and timing["lightcurveDrawnAfterDataMs"] <= 500.0
    async with httpx.AsyncClient(base_url=url) as http:
        page = await http.get("/explorer/object/anything")
        scripts = [await http.get(f"/explorer/assets/{name}") for name in ("explorer.js",)]
    assert page.status_code == 200 and "explorer.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    compressed = sum(len(gzip.compress(s.content, 9)) for s in scripts)
    assert compressed <= 300 * 1024, compressed


def _long_lsst_object() -> tuple[str, list[bytes]]:
    """A periodic LSST object observed for ~2.5 years on a field's cadence (~530 visits),
    sent as one alert every ~150 days (each repeating 12 months of history): about
    1,000 light-curve points once stored."""
    from nightjar.surveys.lsst.simulate import LsstSimulator

    sim = LsstSimulator(seed=77)
    obj = sim.make_object(sim.field_visits(61000.0, 61900.0), kind="periodic")
    detected = [i for i, e in enumerate(obj.epochs) if e.detected]
    chosen = sorted({max(i for i in detected if obj.epochs[i].visit.mjd <= end)
                     for end in range(61150, 62050, 150)})
    return str(obj.object_id), [sim.encode(sim.alert(obj, i)) for i in chosen]


async def test_a_thousand_point_light_curve_is_drawn_within_budget(
        url: str, dep: Deployment, browser: Any) -> None:
    """The issue's budget: an object page with a 1,000-point light curve drawn <= 500 ms
    after its data arrives, in Chromium (each of three loads)."""
    import json

    oid, packets = _long_lsst_object()
    await dep.ingest([RawInput(raw, AlertSource("file", path=f"long/{i}"))
                      for i, raw in enumerate(packets)])
    points = await _lightcurve_points(url, oid)
    assert points >= 1000, points

    def scenario(d: Any) -> list[dict[str, Any]]:
        d.get(f"{url}/explorer/search")
        d.execute_script("localStorage.setItem('nightjar.theme', 'dark')")
        timings = []
        for _ in range(3):
            d.get(f"{url}/explorer/object/{oid}")
            timings.append(wait_for(d, lambda d: d.execute_script(
                "return window.__nightjarTiming"), 30))
        d.save_screenshot(str(SHOTS / "object-1000-points.png"))
        return timings

    timings = await call(scenario, browser)
    (SHOTS / "timing.json").write_text(json.dumps(
        {"points": points, "cores": os.cpu_count(), "loads": timings}, indent=1))
    print(f"\n{points}-point light curve drawn "
          f"{[round(t['lightcurveDrawnAfterDataMs'], 1) for t in timings]} ms after its data "
          f"arrived ({os.cpu_count()} cores)")
    for timing in timings:
        assert timing["points"] == points
        assert timing["lightcurveDrawnAfterDataMs"] <= 500.0, timing


async def _lightcurve_points(url: str, oid: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        body = (await http.post("/graphql", json={"query": (
            "query($o: String!) { object(oid: $o) { lightcurve(surveys: [ZTF, LSST]) "
            "{ mjd } } }"), "variables": {"o": oid}})).json()
    return len(body["data"]["object"]["lightcurve"])


def test_the_search_bar_parser_agrees_with_astropy() -> None:
    """Sexagesimal and decimal positions, read by the page's own parser (run by Node), land
    where astropy puts them."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is needed to run the explorer's parser")
    rng = np.random.default_rng(5)
    cases = []
    for ra, dec in zip(rng.uniform(0, 360, 20), rng.uniform(-89.9, 89.9, 20), strict=True):
        c = SkyCoord(ra * u.deg, dec * u.deg)
        cases.append((c.to_string("hmsdms", sep=":", precision=4) + " 3'", ra, dec, 180.0))
        cases.append((c.to_string("hmsdms", precision=4) + " 2.5\"", ra, dec, 2.5))
        cases.append((f"{ra:.6f} {dec:+.6f}", ra, dec, 10.0))
    import json
    import subprocess
    script = ("import { parseSearch } from '" + str(gen_explorer.SOURCE / "src" / "astro.js")
              + "'; const cases = JSON.parse(process.argv[1]);"
              " console.log(JSON.stringify(cases.map(c => parseSearch(c[0]))));")
    done = subprocess.run([node, "--input-type=module", "-e", script,
                           json.dumps(cases)], capture_output=True, text=True, check=True)
    parsed = json.loads(done.stdout)
    for (text, ra, dec, radius), got in zip(cases, parsed, strict=True):
        p = got["params"]
        sep = SkyCoord(ra * u.deg, dec * u.deg).separation(
            SkyCoord(float(p["ra"]) * u.deg, float(p["dec"]) * u.deg)).arcsec
        assert sep < 0.01, (text, p)
        assert float(p["radius"]) == pytest.approx(radius), text
