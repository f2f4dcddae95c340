#!/usr/bin/env python3
"""console_test.py - the web console in a real browser (headless Chromium
driven by Selenium), against `qgate serve` fed with the fixtures.

    console_test.py QGATE FIXTURES OUTDIR CHROMIUM CHROMEDRIVER

Checks: the read token is asked for, a wrong one refused (401); the
overview's counts are those of `qgate stats --json`; the walk-in ticket's
page shows its 9 steps in event time (its alert, sent after the move, marked
late) and its path on the diagram; a signed webhook whose
client_name is markup renders as text; the browser logs no error beyond
the deliberate 401s.  Screenshots go to OUTDIR.
"""
import glob
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

QGATE, FIXTURES, OUTDIR, CHROMIUM, CHROMEDRIVER = sys.argv[1:6]
TOKEN = "console-test-token"
XSS = '<img src=x onerror="window.qgXss=1;alert(1)">'
WAIT_S = 20
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def sign(payload):
    key = open(os.path.join(FIXTURES, "secret"), "rb").read().rstrip(b"\n")
    mac = hmac.new(key, payload, hashlib.sha256).hexdigest().encode()
    return b'{"payload":' + payload + b',"signature":"' + mac + b'"}\n'


def request(port, path, method="GET", body=None, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                 method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_gate(work):
    tok = os.path.join(work, "token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    log = open(os.path.join(work, "gate.log"), "w+")
    gate = subprocess.Popen(
        [QGATE, "serve", "--db", os.path.join(work, "db"), "--secret-file",
         os.path.join(FIXTURES, "secret"), "--listen", "127.0.0.1:0",
         "--reorder-window", "60", "--token-file", tok],
        stdout=log, stderr=subprocess.STDOUT)
    until = time.time() + WAIT_S
    while time.time() < until:
        log.seek(0)
        for line in log:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("msg") == "listening" or "listening" in line:
                if "port" in e:
                    return gate, e["port"]
        if gate.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    sys.exit("the gate did not start:\n" + log.read())


def feed(port):
    """Every visit of fixtures/visits, a refused delivery, the XSS one."""
    for d in sorted(glob.glob(os.path.join(FIXTURES, "visits", "*", ""))):
        files = sorted(glob.glob(d + "*.json"))
        if d.endswith("walk-in/"):
            # the alert after the move: accepted late, in its place
            files[1], files[2] = files[2], files[1]
        for f in files:
            st, body = request(port, "/webhooks/chup", "POST",
                               open(f, "rb").read())
            check(st == 200, f"{os.path.relpath(f, FIXTURES)} accepted ({st})")
    d = os.path.join(FIXTURES, "illegal", "second-end-visit")
    files = sorted(glob.glob(os.path.join(d, "*.json")))
    for i, f in enumerate(files):
        st, body = request(port, "/webhooks/chup", "POST",
                           open(f, "rb").read())
        check(st == (409 if i == len(files) - 1 else 200),
              f"{os.path.relpath(f, FIXTURES)}: {st}")
    # walk-in's first step as entry 30099, the client named with markup
    first = os.path.join(FIXTURES, "visits", "walk-in",
                         "01-join-live-queue.json")
    payload = json.loads(open(first, "rb").read())["payload"]
    payload["data"]["id"] = 30099
    payload["data"]["client_name"] = XSS
    raw = json.dumps(payload, separators=(",", ":")).encode()
    st, body = request(port, "/webhooks/chup", "POST", sign(raw))
    check(st == 200, f"the webhook named {XSS} accepted ({st} {body!r})")


def browser():
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1100", "--no-first-run"):
        opts.add_argument(a)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # chromium refuses root otherwise
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait(drv, what, cond):
    try:
        return WebDriverWait(drv, WAIT_S).until(lambda d: cond(d))
    except Exception:
        check(False, what + " (timed out)")
        return None


def severe(drv):
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def shot(drv, name):
    path = os.path.join(OUTDIR, name)
    drv.save_screenshot(path)
    print("     screenshot " + path)


def main():
    work = tempfile.mkdtemp(prefix="qgate-console-")
    gate, port = start_gate(work)
    drv = None
    try:
        feed(port)
        base = f"http://127.0.0.1:{port}/console/"
        for token in (None, "wrong-" + TOKEN):
            for path in ("/overview", "/tickets/30001/steps", "/machine"):
                st, _ = request(port, path, token=token)
                check(st == 401, f"{path} with token {token!r}: 401 ({st})")

        drv = browser()
        # No token kept: the page asks for one.
        drv.get(base)
        wait(drv, "the token form without a token",
             lambda d: d.find_element(By.ID, "login").is_displayed())
        check("401" in drv.find_element(By.ID, "login-error").text,
              "the form says the gate answered 401")
        drv.find_element(By.ID, "token").send_keys("wrong-" + TOKEN)
        drv.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait(drv, "a wrong token refused",
             lambda d: "refused" in d.find_element(By.ID, "login-error").text)
        shot(drv, "console-login.png")
        errs = severe(drv)
        check(errs and all("401" in e["message"] for e in errs),
              f"only the 401s logged while the token was wrong: {errs}")

        tok = drv.find_element(By.ID, "token")
        tok.clear()
        tok.send_keys(TOKEN)
        drv.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait(drv, "the overview with the token",
             lambda d: d.find_element(By.ID, "ov-tickets").text != "")

        # The overview's counts are those of qgate stats.
        stats = json.loads(subprocess.run(
            [QGATE, "stats", "--json", "--db", os.path.join(work, "db")],
            check=True, capture_output=True).stdout)
        shown = lambda t: {r.find_elements(By.TAG_NAME, "td")[0].text:
                           int(r.find_elements(By.TAG_NAME, "td")[1].text)
                           for r in drv.find_elements(
                               By.CSS_SELECTOR, f"#{t} tbody tr")}
        check(int(drv.find_element(By.ID, "ov-tickets").text)
              == stats["tickets"], f"tickets as qgate stats: {stats['tickets']}")
        check(int(drv.find_element(By.ID, "ov-refused").text)
              == stats["refused"], f"refused as qgate stats: {stats['refused']}")
        check(shown("ov-states") == stats["states"],
              f"states {shown('ov-states')} as qgate stats {stats['states']}")
        check(shown("ov-reasons") == stats["reasons"],
              f"reasons {shown('ov-reasons')} as {stats['reasons']}")
        check(drv.find_element(By.ID, "ov-his").text == "none set",
              "the HIS: none set")
        shot(drv, "console-overview.png")

        # The walk-in ticket, found with the search box.
        box = drv.find_element(By.ID, "search-id")
        box.send_keys("30001")
        drv.find_element(By.CSS_SELECTOR, "#search button").click()
        rows = wait(drv, "the walk-in ticket's steps",
                    lambda d: d.find_elements(By.CSS_SELECTOR,
                                              "#t-steps tr.step") or None)
        rows = rows or []
        check(len(rows) == 9, f"the walk-in ticket shows 9 steps ({len(rows)})")
        hist = json.loads(request(port, "/tickets/30001/history",
                                  token=TOKEN)[1])
        got = [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows]
        check(got == [h["event"] for h in hist],
              f"its events in event time: {got}")
        late = [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows
                if "late" in r.get_attribute("class").split()]
        check(late == ["alert"], f"the alert sent after the move marked "
              f"late, in its place in event time: {late}")
        path = {h["to"] for h in hist} | {h["from"] for h in hist}
        visited = {g.get_attribute("data-state") for g in
                   drv.find_elements(By.CSS_SELECTOR, "#diagram g.node.visited")}
        check(visited == path, f"the visited states filled: {sorted(visited)}")
        cur = [g.get_attribute("data-state") for g in
               drv.find_elements(By.CSS_SELECTOR, "#diagram g.node.current")]
        check(cur == ["visit_ended"], f"the current state marked: {cur}")
        nums = sorted(int(n) for t in drv.find_elements(
            By.CSS_SELECTOR, "#diagram g.edge.taken text.order")
            for n in t.text.split(","))
        check(nums == list(range(1, 10)), f"edges numbered 1 to 9: {nums}")
        nodes = drv.find_elements(By.CSS_SELECTOR, "#diagram g.node")
        machine = json.loads(request(port, "/machine", token=TOKEN)[1])
        check(len(nodes) == len(machine["states"]),
              f"every state of the machine drawn ({len(nodes)})")
        shot(drv, "console-ticket.png")

        # The client named with markup: text, no element, no script run.
        drv.get(base + "#ticket=30099")
        wait(drv, "the XSS ticket's page",
             lambda d: d.find_element(By.ID, "t-patient").text != "")
        check(drv.find_element(By.ID, "t-patient").text == XSS,
              "the client's name shown as the text sent")
        check(len(drv.find_elements(By.CSS_SELECTOR, "main img")) == 0,
              "no img element created")
        check(drv.execute_script("return window.qgXss === undefined"),
              "its onerror never ran")
        try:
            drv.switch_to.alert
            check(False, "no alert")
        except NoAlertPresentException:
            check(True, "no alert")
        bodies = drv.find_elements(By.CSS_SELECTOR, "pre.body")
        check(bodies and json.dumps(XSS)[1:-1] in
              bodies[0].get_attribute("textContent"),
              "the raw body shows the name as text")
        shot(drv, "console-xss.png")
        errs = severe(drv)
        check(errs == [], f"no browser console errors after the token: {errs}")
    finally:
        if drv:
            drv.quit()
        gate.terminate()
        rc = gate.wait(timeout=WAIT_S)
        check(rc == 0, f"the gate stopped with status 0 ({rc})")
        if failures:
            print("kept " + work)
        else:
            shutil.rmtree(work)
    if failures:
        sys.exit(f"{len(failures)} failed: " + "; ".join(failures))


main()
