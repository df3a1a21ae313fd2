"""The pages in a real browser (Selenium driving Debian's chromium, headless); skipped where none is found."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest
import uvicorn

from tests.protocols.conftest import hiv_dir  # noqa: F401
from tests.protocols.ctf.test_exclude import with_ctf  # noqa: F401
from tests.web.conftest import made, run_serially  # noqa: F401
from tests.web.test_maps import maps  # noqa: F401
from tests.web.test_tomogram import tomo  # noqa: F401
from tests.web.test_viewer import imported  # noqa: F401
from tomoforge.web.app import create_app

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra has it)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no chromium and chromedriver on PATH (Debian: apt-get install -y chromium chromium-driver)",
)


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def serve(root) -> tuple[str, uvicorn.Server, threading.Thread]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(root, launch=run_serially), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture
def site(request):
    servers = []

    def start(root) -> str:
        url, server, thread = serve(root)
        servers.append((server, thread))
        return url

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def wait(driver, condition, timeout=20):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def test_project_page_shows_the_runs_the_graph_and_escaped_labels(browser, site, made):  # noqa: F811
    project, (first, second, third) = made
    project.set_label(third, "<b>bold</b><script>window.hacked=1</script>")
    browser.get(site(project.root))
    rows = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#runs tbody tr"))
    assert len(rows) == 3
    assert wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#graph svg a.node")) == 3)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph svg line.edge")) == 1
    label_cell = browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run="{third}"] td:nth-child(3)')
    assert label_cell.text == "<b>bold</b><script>window.hacked=1</script>"  # shown as text
    assert browser.execute_script("return window.hacked === undefined")
    browser.find_element(By.ID, "filter-state").send_keys("saved")
    assert wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 1)


def test_a_form_with_an_invalid_value_shows_the_message_beside_the_field(browser, site, made):  # noqa: F811
    project, _ = made
    browser.get(site(project.root) + "/new?protocol=toy-make")
    count = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#params input[name="count"]'))[0]
    count.clear()
    count.send_keys("0")
    browser.find_element(By.CSS_SELECTOR, '#params input[name="control_dir"]').send_keys("/tmp")
    browser.find_element(By.CSS_SELECTOR, 'button[data-start="save"]').click()
    message = browser.find_element(By.CSS_SELECTOR, '[data-error-for="count"]')
    wait(browser, lambda d: message.text)
    assert message.text.startswith("count") and "1" in message.text
    assert len(project.runs()) == 3  # nothing saved
    count.clear()
    count.send_keys("2")
    browser.find_element(By.CSS_SELECTOR, 'button[data-start="save"]').click()
    wait(browser, lambda d: "/runs/4" in d.current_url)
    assert project.run(4)["state"] == "saved" and project.run_params(4)["count"] == 2


def test_space_bar_in_the_tilt_viewer_then_save_makes_an_exclude_views_run(browser, site, imported):  # noqa: F811
    project, run_id = imported
    browser.get(site(project.root) + f"/runs/{run_id}/view/tilt_series")
    wait(browser, lambda d: "view 1/41" in d.find_element(By.ID, "view-info").text)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    wait(browser, lambda d: "view 3/41" in d.find_element(By.ID, "view-info").text)
    body.send_keys(Keys.SPACE)
    wait(browser, lambda d: "excluded" in d.find_element(By.ID, "view-info").text)
    order = int(browser.find_element(By.CSS_SELECTOR, ".strip span.current").get_attribute("data-order"))
    assert wait(browser, lambda d: d.execute_script("return document.getElementById('view-image').naturalWidth")) == 16
    browser.find_element(By.ID, "save").click()
    link = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved a.saved-run"))[0]
    new = int(link.text)
    assert project.run(new)["protocol"] == "exclude-views"
    views = project.output_set(new, "tilt_series").get("TS_01").tilt_images
    assert [t.acquisition_order for t in views if t.excluded] == [order]
    angles = sorted(t.tilt_angle_deg for t in views)
    assert next(t for t in views if t.acquisition_order == order).tilt_angle_deg == angles[2]  # the third in tilt order


def test_run_page_shows_the_run_and_refuses_what_the_cli_refuses(browser, site, made):  # noqa: F811
    project, (first, _, _) = made
    browser.get(site(project.root) + f"/runs/{first}")
    wait(browser, lambda d: d.find_element(By.ID, "state").text == "finished")
    assert "numbers: 3 Number (closed)" in browser.find_element(By.ID, "outputs").text
    assert "count" in browser.find_element(By.ID, "params").text
    wait(browser, lambda d: d.find_element(By.ID, "log").text)
    browser.find_element(By.CSS_SELECTOR, 'button[data-action="reset"]').click()
    wait(browser, lambda d: "used by run(s) 2" in d.find_element(By.ID, "message").text)
    assert project.run(first)["state"] == "finished" and len(project.output_set(first, "numbers")) == 3


def test_a_tomogram_shows_its_slices_with_the_coordinates_overlaid(browser, site, tomo):  # noqa: F811
    project, tomograms, picks = tomo
    browser.get(site(project.root) + f"/runs/{tomograms}/tomogram/tomograms")
    xy = '.slice[data-axis="xy"] svg.overlay circle.point'
    circles = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, xy))
    assert len(circles) == 2  # z = 3 and z = 10 are both within 5 voxels of the middle slice (z = 6)
    centres = sorted((float(c.get_attribute("cx")), float(c.get_attribute("cy"))) for c in circles)
    assert centres == [(2.0, 2.0), (9.0, 5.0)]
    xz = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '.slice[data-axis="xz"] svg.overlay circle.point'))
    assert [(float(c.get_attribute("cx")), float(c.get_attribute("cy"))) for c in xz] == [(9.0, 3.0)]  # y = 5 only
    image = browser.find_element(By.CSS_SELECTOR, '.slice[data-axis="xy"] img')
    assert wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image)) == 8  # 16 binned by 2
    box = browser.find_element(By.CSS_SELECTOR, '.slice[data-axis="xy"] .slice-box')
    browser.execute_script(
        "arguments[0].dispatchEvent(new WheelEvent('wheel', {deltaY: 100, bubbles: true, cancelable: true}))", box
    )
    label = browser.find_element(By.CSS_SELECTOR, '.slice[data-axis="xy"] .slice-label')
    wait(browser, lambda d: label.text == "8/12")  # the wheel moved from slice 7/12 to 8/12


def test_ctf_viewer_plots_every_tilt_and_saves_an_exclusion(browser, site, with_ctf):  # noqa: F811
    project, _, ctf, bad = with_ctf
    browser.get(site(project.root) + f"/runs/{ctf}/ctf/ctf")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".ctf-plots svg circle.point")) == 3 * 41)
    tilts = sorted(e.tilt_angle_deg for e in project.output_set(ctf, "ctf").get("TS_01").entries)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(*[Keys.ARROW_RIGHT] * 3)  # to the 4th tilt: the planted bad fit resolution
    wait(browser, lambda d: "tilt 4/41" in d.find_element(By.ID, "entry-info").text)
    body.send_keys(Keys.SPACE)
    wait(browser, lambda d: "excluded" in d.find_element(By.ID, "entry-info").text)
    browser.find_element(By.ID, "save").click()
    new = int(wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved a.saved-run"))[0].text)
    entries = project.output_set(new, "ctf").get("TS_01").entries
    assert [e.tilt_angle_deg for e in entries if e.excluded] == [tilts[3]] == [bad["resolution"]]


def test_clicking_a_slice_adds_points_saved_as_a_new_coordinate_set(browser, site, tomo):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains

    project, tomograms, _ = tomo
    browser.get(site(project.root) + f"/runs/{tomograms}/tomogram/tomograms")
    image = browser.find_element(By.CSS_SELECTOR, '.slice[data-axis="xy"] img')
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image))
    ActionChains(browser).move_to_element_with_offset(image, 1, -5).click().perform()  # from the centre (8, 10)
    wait(browser, lambda d: d.find_element(By.ID, "pick-count").text == "1")
    assert len(browser.find_elements(By.CSS_SELECTOR, '.slice[data-axis="xy"] svg.overlay rect.pick')) == 1
    browser.find_element(By.ID, "save-picks").click()
    new = int(wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved a.saved-run"))[0].text)
    (point,) = list(project.output_set(new, "coordinates"))
    # voxel (9, 5) on XY slice z = 6 (the middle): Å from the centre (8, 10, 6) at 10 Å per voxel
    assert abs(point.x_A - 10.0) <= 10 and abs(point.y_A + 50.0) <= 10 and point.z_A == 0.0


def test_a_run_plot_is_interactive_hover_legend_and_zoom(browser, site, made):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains

    from tomoforge.io.plot_data import LinePlot, Marker, Series
    from tomoforge.protocols.plotting import save_line_plot

    project, (first, _, _) = made
    x = [i / 20 for i in range(21)]
    plot = LinePlot(
        title="FSC",
        x_label="1/Å",
        y_label="FSC",
        series=[
            Series(name="masked", x=x, y=[1 - v for v in x]),
            Series(name="unmasked", x=x, y=[1 - v * v for v in x]),
        ],
        markers=[Marker(value=0.143, label="0.143", axis="y")],
    )
    save_line_plot(project.run_dir(first) / "out" / "fsc.png", plot)
    browser.get(site(project.root) + f"/runs/{first}")
    points = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#plots svg circle.point"))
    assert len(points) == 42 and not browser.find_elements(By.CSS_SELECTOR, "#images img")
    ActionChains(browser).move_to_element(points[5]).perform()  # masked at x = 0.25
    tip = browser.find_element(By.CSS_SELECTOR, "#plots svg text.tooltip")
    wait(browser, lambda d: tip.text == "masked: 1/Å 0.25, 0.75")
    browser.find_element(By.CSS_SELECTOR, '#plots svg g.legend[data-series="1"]').click()  # hide "unmasked"
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#plots svg circle.point")) == 21)
    frame = browser.find_element(By.CSS_SELECTOR, "#plots svg rect.frame")
    width = frame.rect["width"]
    ActionChains(browser).move_to_element_with_offset(frame, -width / 2 + 2, 0).click_and_hold().move_by_offset(
        width / 2 - 4, 0
    ).release().perform()  # drag over the first half: x from 0 to about 0.5
    wait(browser, lambda d: 9 <= len(d.find_elements(By.CSS_SELECTOR, "#plots svg circle.point")) <= 11)
    frame = browser.find_element(By.CSS_SELECTOR, "#plots svg rect.frame")  # redrawn by the zoom
    ActionChains(browser).double_click(frame).perform()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#plots svg circle.point")) == 21)


def test_the_map_viewer_shows_slices_half_maps_and_the_fsc(browser, site, maps):  # noqa: F811
    project, run, _ = maps
    browser.get(site(project.root) + f"/runs/{run}/map/volumes")
    image = browser.find_element(By.CSS_SELECTOR, '.slice[data-axis="xy"] img')
    assert wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image)) == 16
    assert "which=map" in image.get_attribute("src") and "symmetry C6" in browser.find_element(By.ID, "size").text
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#fsc svg circle.point")) == 9)
    assert browser.find_elements(By.CSS_SELECTOR, "#fsc svg line.marker")  # 0.143 and the resolution
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "which")).select_by_value("half2")
    wait(browser, lambda d: "which=half2" in image.get_attribute("src"))


def test_a_project_of_the_tiny_preset_exclude_a_view_and_see_its_particles(browser, site, tiny_demo, tmp_path):
    """The issue's walk through a real project: `tomoforge demo` on the tiny preset (made once per session)."""
    from tomoforge.engine import Project
    from tomoforge.simulate import load_simulation
    from tomoforge.simulate.accuracy import truth_particles

    folder, out, exit_code = tiny_demo
    assert exit_code == 0, out
    project = Project.open(folder / "project")
    runs = {row["protocol"]: row["id"] for row in project.runs()}
    motion = runs["motion-correction"]
    browser.get(site(project.root) + f"/runs/{motion}/view/tilt_series")
    wait(browser, lambda d: "view 1/21" in d.find_element(By.ID, "view-info").text)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(*[Keys.ARROW_RIGHT] * 20)  # to the last view in tilt order: +60°
    wait(browser, lambda d: "view 21/21" in d.find_element(By.ID, "view-info").text)
    body.send_keys(Keys.SPACE)
    browser.find_element(By.ID, "save").click()
    new = int(wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved a.saved-run"))[0].text)
    views = project.output_set(new, "tilt_series").get("TS_01").tilt_images
    assert [t.tilt_angle_deg for t in views if t.excluded] == [max(t.tilt_angle_deg for t in views)]
    # the true particles imported as coordinates, then overlaid on the reconstructed tomogram's slices
    reconstruct = runs["reconstruct-tomogram"]
    tomogram = next(iter(project.output_set(reconstruct, "tomograms")))
    positions, _ = truth_particles(load_simulation(folder / "raw").tilt_series[0].truth)
    points = tmp_path / "points"
    points.mkdir()
    (points / f"{tomogram.name}.txt").write_text("".join(f"{x} {y} {z}\n" for x, y, z in positions))
    picks = project.new_run(
        "import-coordinates", {"files_path": str(points), "pattern": "*.txt"}, {"tomograms": f"{reconstruct}.tomograms"}
    )
    run_serially(project, picks, "run")
    browser.get(site(project.root) + f"/runs/{reconstruct}/tomogram/tomograms")
    circles = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".slice svg.overlay circle.point"))
    assert 0 < len(circles) <= 3 * len(positions)
