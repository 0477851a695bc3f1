"""End to end in headless chromium: a staff user uploads a CSV in the admin, finds the new version, sets an alias.

Runs Debian's chromium through chromedriver against pytest-django's live server. Where chromium is missing the
test is skipped on a developer's machine but fails in CI (``CI=true``), which must install it (see .ci/run).
"""

import os
import shutil
import uuid

import pytest

from tests.factories import StaffUserFactory, weather_csv

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, and nothing that reaches the network by itself or needs a sandbox/GPU this machine lacks.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(tmp_path):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(300)
    yield driver
    driver.quit()


def test_a_staff_user_uploads_a_dataset_and_sees_the_new_version_with_its_plot(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    # given
    user = StaffUserFactory(username="browser-admin")
    user.set_password("a-long-test-password")
    user.save()
    csv_path = tmp_path / "weather.csv"
    csv_path.write_bytes(weather_csv(90))
    model_name = f"browser_{uuid.uuid4().hex[:8]}"

    # when: log in
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.ID, "id_username").send_keys("browser-admin")
    browser.find_element(By.ID, "id_password").send_keys("a-long-test-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, "user-tools")))

    # and: upload a dataset, which trains and registers a model
    browser.get(f"{live_server.url}/admin/training/dataset/add/")
    browser.find_element(By.ID, "id_file").send_keys(str(csv_path))
    browser.find_element(By.ID, "id_model_name").send_keys(model_name)
    browser.find_element(By.NAME, "_save").click()
    # The upload's answer (the add page's own URL already matches the list's): its messages name the job's version.
    WebDriverWait(browser, 300).until(
        lambda driver: any(
            "version 1 is registered" in item.text
            for item in driver.find_elements(By.CSS_SELECTOR, "ul.messagelist li")
        )
    )

    # and: open the new version from the mirror's list
    browser.get(f"{live_server.url}/admin/registry_mirror/modelversion/?q={model_name}")
    browser.find_element(By.LINK_TEXT, model_name).click()
    plot = WebDriverWait(browser, 30).until(
        expected_conditions.presence_of_element_located((By.ID, "plot-predicted_vs_actual"))
    )

    # then: the page names the version and the plot is a loaded image
    WebDriverWait(browser, 60).until(
        lambda driver: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot)
    )
    assert browser.execute_script("return arguments[0].naturalWidth", plot) > 100
    body = browser.find_element(By.TAG_NAME, "body").text
    assert f"{model_name} v1" in body and plot.get_attribute("alt") == "Holdout: predicted vs actual"
    assert "R²" in body and "n_estimators" in body

    # when: point @staging at it with the form on the page (a new model's first version is @champion already)
    assert "champion" in browser.find_element(By.ID, "mirror-extras").text
    alias = browser.find_element(By.ID, "id_alias")
    alias.clear()
    alias.send_keys("staging")
    browser.find_element(By.ID, "set-alias").click()

    # then: MLflow took it, the mirror shows it and the history records who moved it
    message = WebDriverWait(browser, 30).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li"))
    )
    assert message.text == f"@staging now points at {model_name} v1."
    assert "browser-admin" in browser.find_element(By.ID, "mirror-extras").text
    plot = browser.find_element(By.ID, "plot-predicted_vs_actual")
    if os.environ.get("MDS_BROWSER_SCREENSHOT"):
        browser.execute_script("arguments[0].scrollIntoView()", plot)
        browser.save_screenshot(os.environ["MDS_BROWSER_SCREENSHOT"])
