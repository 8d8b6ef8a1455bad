#!/usr/bin/env python3
"""Real-browser check of `clmnt dashboard serve`: Debian's chromium, headless, through Selenium.

Builds a fleet (healthy, failing, degraded, stopped and never-checked molts, state files in
clmnt's format), backs it up with the real binary, starts the real server on a free loopback
port, then asserts each card's badge colour and text, the summary, one column under 600 px,
the dark theme, and that a molt whose state file flips is updated in place through
/api/events (no reload). Saves a screenshot. Prints PASS/FAIL per check; exits 1 on any failure.
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime, timedelta, timezone

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import StaleElementReferenceException

# The badge colours of the light theme (PageAssets.css).
GREEN, RED, AMBER, GREY = "rgb(26, 127, 55)", "rgb(207, 34, 46)", "rgb(154, 103, 0)", "rgb(110, 119, 129)"
failures = []


def check(name, ok, detail=""):
    print(("PASS  " if ok else "FAIL  ") + name + ("" if ok else f"  ({detail})"), flush=True)
    if not ok:
        failures.append(name)


def rgb(css):
    """`rgba(26, 127, 55, 1)` (what Selenium reports) as `rgb(26, 127, 55)`."""
    if css.startswith("rgba(") and css.endswith(", 1)"):
        return "rgb(" + css[5:-4] + ")"
    return css


def iso(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(moment, status, pid=None, port=None, http=None, ms=None, detail=None):
    return {"timestamp": iso(moment), "status": status, "pid": pid, "port": port,
            "http_status": http, "response_time_ms": ms, "detail": detail}


def write_state(home, history, watch=None):
    """health-status.json (the last record) and health-history.jsonl, as clmnt writes them."""
    state = os.path.join(home, ".molt-state")
    os.makedirs(state, exist_ok=True)
    temp = os.path.join(state, ".health-status.json.tmp")
    with open(temp, "w") as f:
        json.dump(history[-1], f, indent=2)
        f.write("\n")
    os.replace(temp, os.path.join(state, "health-status.json"))
    with open(os.path.join(state, "health-history.jsonl"), "a") as f:
        for entry in history:
            f.write(json.dumps({k: v for k, v in entry.items() if v is not None or k != "detail"}, separators=(",", ":")) + "\n")
    if watch is not None:
        with open(os.path.join(state, "health-watch-state.json"), "w") as f:
            json.dump(watch, f, indent=2)


def make_fleet(base, now):
    molts = {"alpha": 19001, "bravo": 19021, "charlie": 19041, "delta": 19061, "echo": 19081}
    for name, port in molts.items():
        home = os.path.join(base, name)
        os.makedirs(home)
        with open(os.path.join(home, ".molt-info"), "w") as f:
            f.write(f"MOLT_NAME={name}\nMOLT_PORT={port}\nMOLT_HOME={home}\nCREATED=2026-11-01T10:00:00Z\n")
    start = now - timedelta(hours=23)
    alpha = [record(start + timedelta(minutes=30 * i), "healthy", 4101, 19001, 200, 9 + (i * 7) % 11) for i in range(46)]
    write_state(os.path.join(base, "alpha"), alpha)
    bravo = [record(start + timedelta(minutes=30 * i), "healthy", 4102, 19021, 200, 14 + (i * 5) % 9) for i in range(40)]
    bravo += [record(now - timedelta(minutes=m), "unhealthy", 4102, 19021, 503, 250.0, "GET /health answered 503")
              for m in (25, 15, 5)]
    write_state(os.path.join(base, "bravo"), bravo,
                {"consecutive_failures": 3, "last_success": bravo[39]["timestamp"], "alert_sent": True, "threshold": 2})
    write_state(os.path.join(base, "charlie"),
                [record(now - timedelta(minutes=m), "stopped", None, 19041, None, None, "no gateway process") for m in (9, 4)])
    delta = [record(now - timedelta(minutes=5 * m), "degraded", 4104, 19061, 200, 30.0 + m, "/readyz answered 503")
             for m in (4, 3, 2, 1)]
    write_state(os.path.join(base, "delta"), delta)
    return molts


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clmnt", required=True)
    parser.add_argument("--screenshot", required=True)
    args = parser.parse_args()
    clmnt = os.path.abspath(args.clmnt)
    work = tempfile.mkdtemp(prefix="clmnt-browser-")
    server = driver = None
    try:
        now = datetime.now(timezone.utc)
        fleet = os.path.join(work, "fleet")
        os.makedirs(fleet)
        make_fleet(fleet, now)
        backups = os.path.join(work, "backups")
        subprocess.run([clmnt, "fleet", "backup", "-d", fleet, "--backup-dir", backups, "--compress", "zstd"],
                       check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        log = open(os.path.join(work, "server.log"), "w")
        # Token mode, as `dashboard setup --systemd` runs it: the page must work from a one-time ?token=.
        token = "browser-check-" + os.urandom(16).hex()
        token_file = os.path.join(work, "token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(token + "\n")
        server = subprocess.Popen([clmnt, "dashboard", "serve", "-d", fleet, "--backup-dir", backups, "--port", str(port),
                                   "--token-file", token_file],
                                  stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        else:
            check("server starts", False, open(os.path.join(work, "server.log")).read())
            return 1

        options = Options()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                     "--hide-scrollbars", "--force-device-scale-factor=1"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
        driver.set_page_load_timeout(20)
        driver.get(base + "/?token=" + token)
        check("?token= traded for a cookie, the address without it", driver.current_url == base + "/", driver.current_url)
        cookies = driver.get_cookies()
        check("the cookie is HttpOnly and SameSite=Strict, not the token",
              len(cookies) == 1 and cookies[0].get("httpOnly") and cookies[0].get("sameSite") == "Strict"
              and token not in cookies[0].get("value", ""), cookies)

        def badge(name):
            # The event stream swaps cards at any moment: read again when one went stale.
            for _ in range(20):
                try:
                    element = driver.find_element(By.CSS_SELECTOR, f"#molt-{name} .badge")
                    return element.text.strip(), rgb(element.value_of_css_property("background-color"))
                except StaleElementReferenceException:
                    time.sleep(0.05)
            raise RuntimeError(f"card of {name} kept changing")

        # The server-rendered page is complete; wait for the stream's first events (they replace every card).
        deadline = time.time() + 10
        while time.time() < deadline and driver.execute_script("return document.body.dataset.live") != "on":
            time.sleep(0.1)
        time.sleep(0.5)

        expected = {"alpha": ("Healthy", GREEN), "bravo": ("Unhealthy", RED), "delta": ("Degraded", AMBER),
                    "charlie": ("Stopped", GREY), "echo": ("Not checked", GREY)}
        for name, (word, colour) in expected.items():
            text, background = badge(name)
            check(f"{name}: badge says '{word}' on {colour}", (text, background) == (word, colour), f"got '{text}' on {background}")
        summary = driver.find_element(By.ID, "summary").text
        check("summary counts by colour", "1 healthy" in summary and "1 failing" in summary and "1 degraded" in summary
              and "2 stopped or unknown" in summary and "5 molts" in summary, summary)
        ago = driver.find_element(By.CSS_SELECTOR, "#molt-bravo time").text
        check("'checked N min ago'", ago == "checked 5 min ago", ago)
        check("sparkline drawn", len(driver.find_elements(By.CSS_SELECTOR, "#molt-alpha svg.spark polyline")) == 1)
        uptime = driver.find_element(By.CSS_SELECTOR, "#molt-bravo dl").text
        check("24 h uptime on the card", "93.0%" in uptime, uptime)
        rows = driver.find_elements(By.CSS_SELECTOR, ".backups tbody tr")
        check("backups table lists the archive", len(rows) == 1 and "5" in rows[0].text and "complete" in rows[0].text,
              [r.text for r in rows])

        driver.set_window_size(1280, 1000)
        time.sleep(0.3)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(max(height, 700), 2400) + 140)
        time.sleep(0.3)
        os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
        driver.save_screenshot(args.screenshot)
        check("screenshot saved", os.path.getsize(args.screenshot) > 10_000, args.screenshot)

        deadline = time.time() + 10
        while time.time() < deadline and driver.execute_script("return document.body.dataset.live") != "on":
            time.sleep(0.1)
        check("event stream connected", driver.execute_script("return document.body.dataset.live") == "on")
        driver.execute_script("window.__notReloaded = true")
        # charlie's gateway comes back: the state file flips as health-watch would write it.
        write_state(os.path.join(fleet, "charlie"),
                    [record(datetime.now(timezone.utc), "healthy", 4103, 19041, 200, 12.5)])
        deadline = time.time() + 10
        while time.time() < deadline and badge("charlie")[0] != "Healthy":
            time.sleep(0.1)
        text, background = badge("charlie")
        check("charlie flips to 'Healthy' on green through SSE", (text, background) == ("Healthy", GREEN),
              f"got '{text}' on {background}")
        check("no reload happened", driver.execute_script("return window.__notReloaded === true"))
        summary = driver.find_element(By.ID, "summary").text
        check("summary updated in place", "2 healthy" in summary and "1 stopped or unknown" in summary, summary)
        check("'checked 0 s ago' after the flip", driver.find_element(By.CSS_SELECTOR, "#molt-charlie time").text.startswith("checked "))

        driver.set_window_size(420, 900)
        time.sleep(0.3)
        lefts = {round(e.rect["x"]) for e in driver.find_elements(By.CSS_SELECTOR, ".card")}
        check("one column under 600 px", len(lefts) == 1, lefts)
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        time.sleep(0.2)
        dark = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        check("dark theme under prefers-color-scheme: dark", dark == "rgb(13, 17, 23)", dark)
    except Exception as error:  # a crash is a failure with its reason, not a traceback-only exit
        check("browser check ran", False, repr(error))
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                check("server stops on SIGTERM within 10 s", False)
        shutil.rmtree(work, ignore_errors=True)
    print(("browser check: FAILED " + ", ".join(failures)) if failures else "browser check: all passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
