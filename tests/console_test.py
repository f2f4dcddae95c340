#!/usr/bin/env python3
"""console_test.py - the web console in a real browser (headless Chromium
driven by Selenium), against `qgate serve` fed with the fixtures.

    console_test.py QGATE FIXTURES OUTDIR CHROMIUM CHROMEDRIVER

Checks: the read token is asked for, a wrong one refused (401); the
overview's counts are those of `qgate stats --json`; the walk-in ticket's
page shows its 9 steps in event time (its alert, sent after the move, marked
late), its refused delivery in its place in event time, marked with its
reason, and its path on the diagram, whose edge labels overlap neither
each other nor the states, laid out as `qgate machine --dot` ranks it; a
signed webhook whose
client_name is markup renders as text; a refused delivery appears on the
Refusals page, filtered by its reason, and is replayed with the admin token
and not without it (nor with the read token); the Waiting times page shows
the p50 of `qgate stats --json`; the held and dead pages load; the browser
logs no error beyond the deliberate 401s and 403; `qgate console --db`
shows the same, says it is read-only and shows no Replay or Retry button.
Screenshots go to OUTDIR.
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
from selenium.common.exceptions import StaleElementReferenceException
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support.ui import WebDriverWait

QGATE, FIXTURES, OUTDIR, CHROMIUM, CHROMEDRIVER = sys.argv[1:6]
TOKEN = "console-test-token"
ADMIN = "console-admin-token"
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
    adm = os.path.join(work, "admin")
    with open(adm, "w") as f:
        f.write(ADMIN + "\n")
    log = open(os.path.join(work, "gate.log"), "w+")
    gate = subprocess.Popen(
        [QGATE, "serve", "--db", os.path.join(work, "db"), "--secret-file",
         os.path.join(FIXTURES, "secret"), "--listen", "127.0.0.1:0",
         "--reorder-window", "60", "--token-file", tok,
         "--admin-token-file", adm],
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
    # a dispensing for the walk-in ticket at 09:30, between its serving
    # (09:20) and served (09:34): held for an earlier step, then given up
    # by refuse_replayable()'s `qgate held --expire` into the rejection log
    payload = json.loads(open(os.path.join(
        FIXTURES, "visits", "walk-in", "07-pharmacy-dispensed.json"),
        "rb").read())["payload"]
    payload["timestamp"] = "2024-03-05T09:30:00+08:00"
    st, body = request(port, "/webhooks/chup", "POST",
                       sign(json.dumps(payload, separators=(",", ":")).encode()))
    check(st == 202, f"the walk-in's dispensing at 09:30 held ({st} {body!r})")
    # walk-in's first step as entry 30099, the client named with markup
    first = os.path.join(FIXTURES, "visits", "walk-in",
                         "01-join-live-queue.json")
    payload = json.loads(open(first, "rb").read())["payload"]
    payload["data"]["id"] = 30099
    payload["data"]["client_name"] = XSS
    raw = json.dumps(payload, separators=(",", ":")).encode()
    st, body = request(port, "/webhooks/chup", "POST", sign(raw))
    check(st == 200, f"the webhook named {XSS} accepted ({st} {body!r})")


def walk_in_as(name, entry):
    """A walk-in step's payload, for live-queue entry `entry`, signed."""
    f = os.path.join(FIXTURES, "visits", "walk-in", name)
    payload = json.loads(open(f, "rb").read())["payload"]
    payload["data"]["id"] = entry
    return sign(json.dumps(payload, separators=(",", ":")).encode())


def refuse_replayable(port, work):
    """A refusal that passes once replayed: entry 30098's alert comes
    first and is held; `qgate held --expire` gives up on it (into the
    rejection log); then its join comes, after which the alert is legal."""
    st, body = request(port, "/webhooks/chup", "POST",
                       walk_in_as("02-alert.json", 30098))
    check(st == 202, f"30098's alert before its join is held ({st})")
    r = subprocess.run([QGATE, "held", "--expire", "--db",
                        os.path.join(work, "db")], capture_output=True)
    check(r.returncode == 1, f"qgate held --expire gave one up (exit 1 when "
          f"some were: {r.returncode} {r.stderr!r})")
    st, body = request(port, "/webhooks/chup", "POST",
                       walk_in_as("01-join-live-queue.json", 30098))
    check(st == 200, f"30098's join accepted ({st})")
    log = json.loads(request(port, "/rejections", token=TOKEN)[1])
    mine = [r for r in log["rejections"] if r.get("live_queue_id") == 30098]
    check(len(mine) == 1 and not mine[0]["resolved"],
          f"30098's alert in the rejection log, open: {mine}")
    return mine[0] if mine else None


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
    """Waits for cond.  An element the page replaced while cond looked at
    it (a list re-rendered) is looked for again, not a failure; any other
    error is named as it is, never reported as a time-out."""
    try:
        return WebDriverWait(
            drv, WAIT_S,
            ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d: cond(d))
    except TimeoutException:
        check(False, what + " (timed out)")
    except Exception as err:
        check(False, f"{what} ({type(err).__name__}: {err})")
    return None


def severe(drv):
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def shot(drv, name):
    path = os.path.join(OUTDIR, name)
    drv.save_screenshot(path)
    print("     screenshot " + path)


def refusal_rows(drv):
    return drv.find_elements(By.CSS_SELECTOR, "#ref-list tr.refusal")


def refusals_page(drv, base, port, refused):
    """The refusal shows, filtered by its reason, with its body as text;
    Replay asks for the admin token, refuses the read token, and replays
    once with the admin token."""
    drv.get(base + "#refusals")
    rows = wait(drv, "the refusals", lambda d: refusal_rows(d) or None) or []
    log = json.loads(request(port, "/rejections", token=TOKEN)[1])
    check(len(rows) == log["matched"],
          f"every refusal listed ({len(rows)} of {log['matched']})")
    ids = [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows]
    check(ids == [str(r["id"]) for r in log["rejections"]],
          f"newest first: {ids}")
    if refused is None:
        return
    sel = drv.find_element(By.ID, "ref-reason")
    sel.find_element(By.CSS_SELECTOR,
                     f"option[value='{refused['code']}']").click()
    drv.find_element(By.CSS_SELECTOR, "#ref-filter button").click()
    want = json.loads(request(port, "/rejections?reason=" + refused["code"],
                              token=TOKEN)[1])["matched"]
    wait(drv, "the reason filter", lambda d: len(refusal_rows(d)) == want)
    mine = lambda d: [r for r in refusal_rows(d) if r.find_elements(
        By.TAG_NAME, "td")[0].text == str(refused["id"])]
    row = mine(drv)
    check(len(row) == 1, f"refusal {refused['id']} ({refused['code']}) "
          f"listed under its reason, {want} in all")
    if not row:
        return
    body = row[0].find_element(By.XPATH, "following-sibling::tr[1]")
    body.find_element(By.TAG_NAME, "summary").click()
    check('"id": 30098' in body.find_element(By.TAG_NAME, "pre").text,
          "its body shown pretty-printed")

    def replay_button(d):
        r = mine(d)
        return r[0].find_elements(By.CSS_SELECTOR, "button.replay") if r else []

    def still_open():
        log = json.loads(request(port, "/rejections", token=TOKEN)[1])
        return [r for r in log["rejections"]
                if r["id"] == refused["id"] and not r["resolved"]] != []

    # No admin token: the form, and nothing sent.
    replay_button(drv)[0].click()
    wait(drv, "the admin token asked for",
         lambda d: d.find_element(By.ID, "admin-login").is_displayed())
    check(still_open(), "not replayed without the admin token")
    shot(drv, "console-replay-token.png")
    # The read token will not do.
    drv.find_element(By.ID, "admin-token").send_keys(TOKEN)
    drv.find_element(By.CSS_SELECTOR, "#admin-form button[type=submit]").click()
    wait(drv, "the read token refused for replay", lambda d: "403" in
         d.find_element(By.ID, "admin-error").text and
         d.find_element(By.ID, "admin-login").is_displayed())
    check(still_open(), "not replayed with the read token")
    # The admin token replays, once.
    drv.find_element(By.ID, "admin-token").send_keys(ADMIN)
    drv.find_element(By.CSS_SELECTOR, "#admin-form button[type=submit]").click()
    wait(drv, "the replay's result", lambda d: "accepted" in
         d.find_element(By.ID, "admin-result").text)
    check(not still_open(), "replayed with the admin token: resolved")
    wait(drv, "the row marked resolved", lambda d: mine(d) and "resolved" in
         mine(d)[0].get_attribute("class").split())
    check(replay_button(drv) == [], "no Replay button on a resolved refusal")
    t = json.loads(request(port, "/tickets/lq:30098", token=TOKEN)[1])
    check(t["records"] == 2, f"30098 has its join and alert ({t['records']})")
    shot(drv, "console-refusals.png")


def read_only_console(drv, work):
    """`qgate console --db` over the gate's store, beside the running gate
    (LMDB lets a reader open it): the same overview counts and the walk-in
    ticket's page, Replay refused as read-only, no browser error beyond the
    token's 401 and that 403."""
    log = open(os.path.join(work, "console.log"), "w+")
    con = subprocess.Popen(
        [QGATE, "console", "--db", os.path.join(work, "db"), "--listen",
         "127.0.0.1:0", "--token-file", os.path.join(work, "token")],
        stdout=log, stderr=subprocess.STDOUT)
    port = None
    until = time.time() + WAIT_S
    while port is None and time.time() < until and con.poll() is None:
        log.seek(0)
        for line in log:
            if '"msg":"listening"' in line:
                port = json.loads(line)["port"]
        time.sleep(0.05)
    check(port is not None, "qgate console --db started")
    if port is None:
        con.kill()
        return
    try:
        base = f"http://127.0.0.1:{port}/console/"
        drv.get(base)
        wait(drv, "the console's token form", lambda d: d.find_element(
            By.ID, "login").is_displayed())
        drv.find_element(By.ID, "token").send_keys(TOKEN)
        drv.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait(drv, "the console's overview", lambda d: d.find_element(
            By.ID, "ov-tickets").text != "")
        stats = json.loads(subprocess.run(
            [QGATE, "stats", "--json", "--db", os.path.join(work, "db")],
            check=True, capture_output=True).stdout)
        check(int(drv.find_element(By.ID, "ov-tickets").text)
              == stats["tickets"], "qgate console: tickets as qgate stats")
        drv.get(base + "#ticket=30001")
        rows = wait(drv, "qgate console: the walk-in ticket",
                    lambda d: d.find_elements(By.CSS_SELECTOR,
                                              "#t-steps tr.step") or None)
        check(len(rows or []) == 9, "qgate console: the walk-in ticket's 9 "
              "steps")
        check(drv.find_element(By.ID, "read-only").is_displayed(),
              "qgate console: the header says read-only")
        shot(drv, "console-read-only.png")
        # No Replay or Retry button: the console writes nothing.
        drv.get(base + "#refusals")
        rows = wait(drv, "qgate console: the refusals",
                    lambda d: refusal_rows(d) or None) or []
        log = json.loads(request(port, "/rejections", token=TOKEN)[1])
        opened = [r for r in log["rejections"] if not r["resolved"] and
                  not r["truncated"] and not r["purged"]]
        check(len(rows) == log["matched"] and opened,
              f"qgate console: every refusal listed, {len(opened)} open")
        check(drv.find_elements(By.CSS_SELECTOR, "button.replay") == [],
              "qgate console: no Replay button")
        said = [r.find_elements(By.TAG_NAME, "td")[7].text for r in rows
                if r.find_elements(By.TAG_NAME, "td")[0].text in
                {str(o["id"]) for o in opened}]
        check(said and all(t == "open (read-only)" for t in said),
              f"qgate console: the open refusals say read-only: {said}")
        drv.get(base + "#dead")
        wait(drv, "qgate console: the dead letters page", lambda d: d.find_element(
            By.ID, "dead-count").text.endswith("dead letters."))
        check(drv.find_elements(By.CSS_SELECTOR, "button.retry") == [],
              "qgate console: no Retry button")
        st, body = request(port, "/rejections/1/replay", "POST", b"{}",
                           token=TOKEN)
        check(st == 403 and json.loads(body)["code"] == "read_only",
              f"qgate console: replay refused, read-only ({st})")
        errs = severe(drv)
        check(errs and all("401" in e["message"] for e in errs),
              f"qgate console: only the token's 401 logged: {errs}")
    finally:
        con.terminate()
        check(con.wait(timeout=WAIT_S) == 0, "qgate console stopped, 0")


def search_page(drv, base, work):
    """The ticket search by state finds the walk-in ticket, as qgate list
    lists them, and its link opens the ticket's page."""
    drv.get(base + "#tickets")
    wait(drv, "the ticket search", lambda d: len(d.find_elements(
        By.CSS_SELECTOR, "#tk-state option")) > 1)
    Select(drv.find_element(By.ID, "tk-state")).select_by_value("visit_ended")
    drv.find_element(By.CSS_SELECTOR, "#tk-filter button").click()
    wait(drv, "the search's hash", lambda d: "state=visit_ended" in
         d.execute_script("return location.hash"))
    rows = wait(drv, "the tickets found", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#tk-list tr.ticket-row") or None) or []
    listed = [json.loads(line) for line in subprocess.run(
        [QGATE, "list", "--json", "--state", "visit_ended", "--db",
         os.path.join(work, "db")],
        check=True, capture_output=True, text=True).stdout.splitlines()]
    got = [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows]
    check(got == [str(t["ticket"]) for t in listed],
          f"the tickets in visit_ended as qgate list lists them: {got}")
    walk_in = [r for r in rows if "lq:30001" in
               r.find_elements(By.TAG_NAME, "td")[1].text.split()]
    check(len(walk_in) == 1, "the walk-in ticket found by its state")
    check(all(r.find_elements(By.TAG_NAME, "td")[2].text == "visit_ended"
              for r in rows), "only tickets in visit_ended")
    shot(drv, "console-search.png")
    if walk_in:
        walk_in[0].find_element(By.TAG_NAME, "a").click()
        # The page of the ticket shown before (30099's, 1 step) stays
        # until the walk-in's answers are in: wait for the 9 steps.
        wait(drv, "the walk-in ticket from the search",
             lambda d: len(d.find_elements(By.CSS_SELECTOR,
                                           "#t-steps tr.step")) == 9 or None)
        steps = drv.find_elements(By.CSS_SELECTOR, "#t-steps tr.step")
        check(len(steps or []) == 9, "its link opens the walk-in ticket")


def waits_page(drv, base, work):
    """The p50s shown are those of qgate stats --json."""
    stats = json.loads(subprocess.run(
        [QGATE, "stats", "--json", "--db", os.path.join(work, "db")],
        check=True, capture_output=True).stdout)
    drv.get(base + "#waits")
    wait(drv, "the waiting times", lambda d: d.find_elements(
        By.CSS_SELECTOR, ".waits-service[data-service=all] svg.histogram"))
    for kind in ("wait", "service", "visit"):
        d = stats["durations"][kind]
        spans = drv.find_elements(
            By.CSS_SELECTOR, f".waits-service[data-service=all] "
            f"figure[data-kind={kind}] span.p50")
        got = spans[0].get_attribute("data-ms") if spans else None
        want = str(d["p50_ms"]) if d["count"] else None
        check(got == want, f"{kind} p50 as qgate stats: {got} ({want})")
    bars = drv.find_elements(By.CSS_SELECTOR, ".waits-service[data-service=all]"
                             " figure[data-kind=wait] svg rect.bar")
    check(len(bars) > 0, f"the wait histogram drawn ({len(bars)} bars)")
    shot(drv, "console-waits.png")


def main():
    work = tempfile.mkdtemp(prefix="qgate-console-")
    gate, port = start_gate(work)
    drv = None
    try:
        feed(port)
        refused = refuse_replayable(port, work)
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
        check(not drv.find_element(By.ID, "read-only").is_displayed(),
              "qgate serve: the header does not say read-only")
        rate = json.loads(request(port, "/deliveries", token=TOKEN)[1])
        total = sum(sum(row) for row in rate["counts"])
        wait(drv, "the deliveries chart", lambda d: d.find_elements(
            By.CSS_SELECTOR, "#ov-rate svg rect.bar.v-accepted"))
        bars = drv.find_elements(By.CSS_SELECTOR, "#ov-rate svg rect.bar")
        drawn = sum(int(b.get_attribute("data-count") or 0) for b in bars)
        check(drawn == total and
              drv.find_element(By.ID, "ov-rate-total").text == str(total),
              f"the deliveries per minute drawn: {drawn} of {total}")
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
        # Its refusal (the dispensing at 09:30, given up) in its place in
        # event time: after the serving (09:20), before the served (09:34).
        mine = json.loads(request(port, "/tickets/30001/deliveries",
                                  token=TOKEN)[1])["refused"]
        check(len(mine) == 1 and mine[0]["code"] == "ticket_closed" and
              mine[0]["event_time"] == "event",
              f"the walk-in ticket's one refusal, ticket_closed: {mine}")
        marked = drv.find_elements(By.CSS_SELECTOR,
                                   "#t-steps tr.step, #t-steps tr.refused")
        kinds = [("refused" if "refused" in r.get_attribute("class").split()
                  else r.find_elements(By.TAG_NAME, "td")[2].text)
                 for r in marked]
        check(kinds.count("refused") == 1 and kinds.index("refused") > 0 and
              kinds[kinds.index("refused") - 1] == "serve" and
              kinds[kinds.index("refused") + 1] == "complete",
              f"the refusal between the serving and the served: {kinds}")
        ref = drv.find_elements(By.CSS_SELECTOR, "#t-steps tr.refused")
        tag = ref[0].find_elements(By.TAG_NAME, "td")[6].text if ref else ""
        check(mine and tag == "refused: " + mine[0]["code"],
              f"the refusal marked with its reason: {tag!r}")
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
        # The labels of the edges (their events, and the order numbers of
        # the steps that took them) clear each other and the states, and
        # stay in the chart.
        got = drv.execute_script("""
            const box = e => { const b = e.getBoundingClientRect();
                return [b.left, b.top, b.right, b.bottom]; };
            return {
              labels: [...document.querySelectorAll('#diagram g.edge text')]
                .map(e => box(e).concat([e.closest('g.edge').dataset.from + '>' +
                  e.closest('g.edge').dataset.to + ' ' + e.textContent])),
              states: [...document.querySelectorAll('#diagram g.node')]
                .map(g => box(g.querySelector('rect')).concat([g.dataset.state,
                  g.getBoundingClientRect().width, g.dataset.row])),
              chart: box(document.querySelector('#diagram svg'))};""")
        meets = lambda a, b: (a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and
                              a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5)
        labels, states = got["labels"], got["states"]
        clash = [(a[4], b[4]) for i, a in enumerate(labels)
                 for b in labels[i + 1:] if meets(a, b)]
        check(len(labels) >= len(machine["states"]) and clash == [],
              f"no two of the {len(labels)} edge labels overlap: {clash}")
        cover = [(a[4], s[4]) for a in labels for s in states if meets(a, s)]
        check(cover == [], f"no edge label covers a state: {cover}")
        c = got["chart"]
        out = [a[4] for a in labels if a[0] < c[0] or a[1] < c[1] or
               a[2] > c[2] or a[3] > c[3]]
        check(out == [], f"every edge label inside the chart: {out}")
        # The line and the side row are those of qgate machine --dot's two
        # ranks (docs/lifecycle.svg): the same happy path, the same sides.
        ranks = [line.split(";")[1:-1] for line in subprocess.run(
            [QGATE, "machine", "--dot"], check=True, capture_output=True,
            text=True).stdout.splitlines() if "rank=same" in line]
        ranks = [[n.strip() for n in r] for r in ranks]
        line = [s[4] for s in sorted(states, key=lambda s: s[0])
                if s[6] == "line" and s[1] == states[0][1]]
        side = [s[4] for s in sorted(states, key=lambda s: s[0])
                if s[6] == "side"]
        check(len(ranks) == 2 and line == ranks[0] and side == ranks[1],
              f"the line {line} and the side row {side} as qgate machine "
              f"--dot ranks them: {ranks}")
        check(all(s[1] > states[0][3] for s in states if s[6] == "side"),
              "the side row under the line")
        shot(drv, "console-ticket.png")

        # The client named with markup: text, no element, no script run.
        drv.get(base + "#ticket=30099")
        # The walk-in's page stays until 30099's answers are in: wait for
        # its title, set with its patient's name.
        wait(drv, "the XSS ticket's page",
             lambda d: d.find_element(By.ID, "t-title").text == "30099" and
             d.find_element(By.ID, "t-patient").text != "")
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

        search_page(drv, base, work)
        refusals_page(drv, base, port, refused)
        errs = severe(drv)
        check(len(errs) == 1 and "403" in errs[0]["message"],
              f"only the read token's 403 logged on the Refusals page: {errs}")
        waits_page(drv, base, work)
        drv.get(base + "#held")
        wait(drv, "the held page", lambda d: d.find_element(
            By.ID, "held-count").text == "0 held.")
        drv.get(base + "#dead")
        wait(drv, "the dead letters page", lambda d: d.find_element(
            By.ID, "dead-count").text == "0 dead letters.")
        errs = severe(drv)
        check(errs == [], f"no browser console errors on the waits, held "
              f"and dead pages: {errs}")
        read_only_console(drv, work)
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
