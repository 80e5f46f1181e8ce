#!/usr/bin/python3
"""Drives Debian's chromium (headless, through chromium-driver and python3-selenium) against a
node serving --web, for tests/tests/web.rs. Reads a JSON plan from argv[1]; talks to the other
node ("bob", a `hark-node --json`) through its control socket; prints one JSON line of results
on stdout. Every wait has a deadline; any failure is an exception (exit code 1) with the reason.
"""
import json
import os
import socket
import ssl
import signal
import sys
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.action_chains import ActionChains

PLAN = json.load(open(sys.argv[1]))
RESULTS = {}
WAIT = 20.0


def log(text):
    print(f"drive.py: {text}", file=sys.stderr, flush=True)


def wait_until(what, check, timeout=WAIT, every=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # the page may be between states
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


class Control:
    """A client of a node's control socket (JSON lines)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(0.2)
        self.buf = b""
        self.events = []

    def send(self, command):
        self.sock.sendall((json.dumps(command) + "\n").encode())

    def pump(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                self.events.append(json.loads(line))

    def expect(self, what, match, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if match(event):
                    self.events.remove(event)
                    return event
            self.pump()
        raise AssertionError(f"node never sent {what}; saw {[e.get('event') for e in self.events][-20:]}")


def spurts_of_one_press(node, frames_sent):
    """Every `voice_end` the node reports for one press. A page stalled (a busy machine,
    a phone in a pocket) for longer than the listener's end timeout ends the spurt there,
    and what the page sends after the stall comes as a second part of it."""
    is_end = lambda e: e.get("event") == "voice_end"
    ends = [node.expect("the spurt's voice_end", is_end, timeout=30)]
    while sum(e.get("received", 0) for e in ends) < frames_sent:
        try:
            ends.append(node.expect("the rest of the spurt", is_end, timeout=5))
        except AssertionError:
            break
    return ends


def browser_processes(driver):
    """The pids of the browser that chromedriver started (its descendants)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [driver.service.process.pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stall_browser(driver, after_s, for_s):
    """Stop the whole browser for `for_s` seconds, `after_s` from now, as a busy phone stalls."""
    time.sleep(after_s)
    pids = browser_processes(driver)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(for_s)
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def press(driver, ptt, listener, hold_s, suffix, stall=None):
    """Hold the talk button for `hold_s` (the browser stopped for `stall` = (after, for) s on
    the way, if given); the press, the frames the page sent and what the listener reported
    go into RESULTS under `suffix`."""
    before = driver.execute_script("return window.hark.voice.stats.framesSent")
    staller = stall and threading.Thread(target=stall_browser, args=(driver, *stall))
    if staller:
        staller.start()
    ActionChains(driver).click_and_hold(ptt).pause(hold_s).release().perform()
    if staller:
        staller.join()
    stats = wait_until(f"the spurt{suffix} sent", lambda: (lambda s: s if s["releasedAt"] > s["pressedAt"] else None)(
        driver.execute_script("return window.hark.voice.stats")))
    sent = stats["framesSent"] - before
    RESULTS[f"held_ms{suffix}"] = stats["releasedAt"] - stats["pressedAt"]
    RESULTS[f"ptt_frames_sent{suffix}"] = sent
    RESULTS[f"bob_voice_ends{suffix}"] = spurts_of_one_press(listener, sent)


def browser(width, height, user_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--ignore-certificate-errors", f"--user-data-dir={user_dir}",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={PLAN['mic_wav']}",
        "--autoplay-policy=no-user-gesture-required",
        f"--window-size={width},{height}", "--lang=en-GB",
    ]:
        options.add_argument(arg)
    options.set_capability("acceptInsecureCerts", True)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def text_of(driver, selector):
    return driver.execute_script(f"return document.querySelector({json.dumps(selector)})?.textContent || ''")


def visible(driver, element_id):
    return driver.execute_script(f"const e = document.getElementById({json.dumps(element_id)}); return e && !e.hidden")


def screenshot(driver, name, width, height):
    driver.set_window_size(width, height)
    # The window size includes no chrome in headless mode; set the viewport exactly.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    time.sleep(0.4)
    path = os.path.join(PLAN["screenshots"], name)
    driver.save_screenshot(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def node_has(driver, room, text):
    """Whether the node serving the page holds `text` in `room`, asked with the page's session
    cookie but not through the page (whose network may be off)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the node's own self-signed certificate
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    base = PLAN["url"].split("#")[0].rstrip("/")
    request = urllib.request.Request(f"{base}/v1/rooms/{room}/messages", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, context=context, timeout=5) as answer:
        return text in answer.read().decode()


def gate_error(driver):
    return text_of(driver, "#gate-error")


def main():
    bob = Control(PLAN["bob_socket"])
    tmp = PLAN["tmp"]

    # 1. No join link: the page says so, and the API gives nothing.
    d = browser(390, 844, os.path.join(tmp, "chrome-outsider"))
    try:
        d.get(PLAN["url"])
        wait_until("the no-link message", lambda: "join link" in gate_error(d))
        RESULTS["no_link_message"] = gate_error(d)
        RESULTS["no_link_api"] = d.execute_async_script(
            "const done = arguments[0];"
            "Promise.all(['/v1/rooms', '/v1/rooms/lobby/messages', '/web/me', '/v1/events']"
            ".map(p => fetch(p).then(r => r.status))).then(done, e => done(String(e)));")
        # A made-up link.
        d.get(PLAN["bad_link"])
        wait_until("the join form", lambda: visible(d, "join-form"))
        d.find_element(By.ID, "join-name").send_keys("mallory")
        d.find_element(By.ID, "join-button").click()
        wait_until("the bad-link message", lambda: "not valid" in gate_error(d))
        RESULTS["bad_link_message"] = gate_error(d)
    finally:
        d.quit()

    # 2. The real link: join as "ann".
    d = browser(1280, 800, os.path.join(tmp, "chrome-ann"))
    try:
        started = time.monotonic()
        d.get(PLAN["join_link"])
        wait_until("the join form", lambda: visible(d, "join-form"))
        d.find_element(By.ID, "join-name").clear()
        d.find_element(By.ID, "join-name").send_keys("ann")
        d.find_element(By.ID, "join-button").click()
        wait_until("the app", lambda: visible(d, "app"))
        me = d.execute_script("return window.hark.state.me")
        RESULTS["web_peer_id"] = me["peer_id"]
        RESULTS["web_name"] = me["name"]
        RESULTS["secure_context"] = d.execute_script("return window.isSecureContext")
        RESULTS["has_audio_encoder"] = d.execute_script("return typeof AudioEncoder !== 'undefined'")

        # Bob's earlier message is in the history (time to first message).
        wait_until("bob's history message in the page",
                   lambda: PLAN["history_text"] in text_of(d, "#messages"))
        RESULTS["join_to_first_message_ms"] = round((time.monotonic() - started) * 1000)

        # Time to first message on a fresh load with a session.
        t0 = time.monotonic()
        d.get(PLAN["url"])
        wait_until("history after reload", lambda: PLAN["history_text"] in text_of(d, "#messages"))
        RESULTS["load_to_first_message_ms"] = round((time.monotonic() - t0) * 1000)
        RESULTS["page_bytes"] = d.execute_script(
            "return performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))"
            ".filter(e => !e.name.includes('/v1/') && !e.name.includes('/web/'))"
            ".reduce((n, e) => n + (e.decodedBodySize || 0), 0)")

        # 3. Public room, both ways.
        bob.send({"cmd": "send", "room": "lobby", "text": "hello from bob"})
        wait_until("bob's live message in the page", lambda: "hello from bob" in text_of(d, "#messages"))
        box = d.find_element(By.ID, "text")
        box.send_keys("hello from ann", Keys.ENTER)
        got = bob.expect("ann's message", lambda e: e.get("event") == "message" and e.get("text") == "hello from ann")
        RESULTS["bob_got_public"] = got
        box.send_keys("/me waves", Keys.ENTER)
        got = bob.expect("ann's /me", lambda e: e.get("event") == "message" and e.get("text") == "waves")
        RESULTS["bob_got_me"] = got

        # 4. Private room by invite (bob created it); not readable before.
        RESULTS["private_before_invite"] = d.execute_async_script(
            "const done = arguments[0];"
            "fetch('/v1/rooms/ops/messages').then(r => done(r.status), e => done(String(e)));")
        d.find_element(By.ID, "room-input").send_keys(PLAN["ops_invite"], Keys.ENTER)
        wait_until("the private room", lambda: text_of(d, "#room-title") == "#ops")
        d.find_element(By.ID, "text").send_keys("secret plan from ann", Keys.ENTER)
        got = bob.expect("ann's private message",
                         lambda e: e.get("event") == "message" and e.get("text") == "secret plan from ann")
        RESULTS["bob_got_private"] = got
        bob.send({"cmd": "send", "room": "ops", "text": "ops reply from bob"})
        wait_until("bob's private reply in the page", lambda: "ops reply from bob" in text_of(d, "#messages"))
        # Unread count: a lobby message while ann is in ops.
        bob.send({"cmd": "send", "room": "lobby", "text": "lobby while away"})
        wait_until("an unread badge on lobby",
                   lambda: d.execute_script(
                       "return [...document.querySelectorAll('.room')].find(b => b.dataset.room === 'lobby')"
                       "?.querySelector('.badge')?.textContent") == "1")
        RESULTS["unread_badge"] = True

        # Search.
        d.find_element(By.ID, "search-toggle").click()
        d.find_element(By.ID, "search-input").send_keys("secret", Keys.ENTER)
        wait_until("a search result", lambda: "secret plan from ann" in text_of(d, "#search-results"))
        d.find_element(By.ID, "search-close").click()

        # The page's connection drops (a phone's Wi-Fi): what bob says meanwhile reaches ann's
        # node, and the page shows it once it is back, without a reload.
        d.execute_script("document.querySelector('.room[data-room=\"lobby\"]').click()")
        wait_until("lobby", lambda: text_of(d, "#room-title") == "#lobby")
        d.execute_cdp_cmd("Network.enable", {})
        offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        d.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
        # Offline emulation leaves an open stream alone: drop it as a lost network would.
        d.execute_script("window.hark.state.events.reopen()")
        wait_until("the page offline", lambda: d.execute_script(
            "return document.getElementById('room-sub').classList.contains('offline')"))
        gap_text = "said while ann was offline"
        bob.send({"cmd": "send", "room": "lobby", "text": gap_text})
        wait_until("ann's node holding bob's message", lambda: node_has(d, "lobby", gap_text))
        d.execute_cdp_cmd("Network.emulateNetworkConditions", dict(offline, offline=False))
        wait_until("the message said while the page was offline",
                   lambda: gap_text in text_of(d, "#messages"), timeout=40)
        RESULTS["caught_up_after_offline"] = True

        # 5. Push-to-talk from the page. The microphone is opened first (a phone asks once),
        # so the measured press starts capturing at once.
        d.execute_script("document.querySelector('.room[data-room=\"lobby\"]').click()")
        wait_until("lobby again", lambda: text_of(d, "#room-title") == "#lobby")
        opened = d.execute_async_script(
            "const done = arguments[0]; window.hark.voice.openMic().then(done, e => done(String(e)));")
        assert opened is True, f"the microphone did not open: {opened}"
        ptt = d.find_element(By.ID, "ptt")
        RESULTS["codec"] = d.execute_script("return window.hark.voice.codec")
        press(d, ptt, bob, PLAN["hold_s"], "")

        # The fallback for browsers without WebCodecs' Opus: PCM frames, encoded by the node.
        d.execute_script("window.hark.voice.codec = 'pcm'")
        press(d, ptt, bob, 1.5, "_pcm")
        d.execute_script("window.hark.voice.codec = 'opus'")

        # A press during which the page stalls for longer than the listener's end timeout
        # (200 ms): bob hears the rest of it as a second part, not nothing. The stall comes
        # halfway through, so that a slow start of the press cannot put it before the press.
        press(d, ptt, bob, 3.0, "_stalled", stall=(1.5, 0.45))

        # 6. A talk-spurt from bob plays in the page.
        d.execute_script("window.hark.voice.stats.rxPeak = 0; window.hark.voice.stats.rxChunks = 0")
        bob.send({"cmd": "voice", "room": "lobby", "wav": PLAN["bob_wav"]})
        wait_until("the talking indicator", lambda: visible(d, "talking") and "talking" in text_of(d, "#talking"), timeout=30)
        RESULTS["talking_text"] = text_of(d, "#talking")
        bob.expect("bob's voice_sent", lambda e: e.get("event") == "voice_sent", timeout=60)
        wait_until("the spurt played", lambda: d.execute_script("return window.hark.voice.stats.rxPeak") > 0.02, timeout=10)
        RESULTS["rx"] = d.execute_script("return window.hark.voice.stats")

        # A refused microphone is said plainly (a second Voice, with the browser refusing).
        RESULTS["mic_refused"] = d.execute_async_script(
            "const done = arguments[0]; let said = null;"
            "const v = new window.hark.voice.constructor((text) => { said = text; });"
            "navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('no', 'NotAllowedError'));"
            "v.openMic().then(ok => done([ok, said]), e => done([String(e), said]));")

        # 7. Screenshots: desktop and phone.
        bob.send({"cmd": "alert", "room": "lobby", "text": "fire alarm on deck 2"})
        wait_until("the alert", lambda: "fire alarm on deck 2" in text_of(d, "#messages"))
        time.sleep(3.2)  # the flash fades
        RESULTS["screenshots"] = [
            screenshot(d, "desktop.png", 1280, 800),
            screenshot(d, "phone.png", 390, 844),
        ]
        d.execute_script("document.body.classList.add('show-rooms')")
        RESULTS["screenshots"].append(screenshot(d, "phone-rooms.png", 390, 844))
    finally:
        d.quit()

    # 8. The used link again, in another browser: refused with a clear message.
    d = browser(390, 844, os.path.join(tmp, "chrome-reuse"))
    try:
        d.get(PLAN["join_link"])
        wait_until("the join form", lambda: visible(d, "join-form"))
        d.find_element(By.ID, "join-name").send_keys("eve")
        d.find_element(By.ID, "join-button").click()
        wait_until("the used-link message", lambda: "already used" in gate_error(d))
        RESULTS["reused_link_message"] = gate_error(d)
        RESULTS["reused_link_api"] = d.execute_async_script(
            "const done = arguments[0]; fetch('/v1/rooms').then(r => done(r.status), e => done(String(e)));")
    finally:
        d.quit()

    print(json.dumps(RESULTS), flush=True)


if __name__ == "__main__":
    main()
