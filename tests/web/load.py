#!/usr/bin/python3
"""How many browser clients one node serves: N web users (each with its own join link and
session, as a page holds them) follow the event stream (GET /v1/events) and the voice socket
(/web/voice) of one `hark-node --web`, while a peer ("bob", `hark-node --json`) sends chat at
10 messages/s and then talks for a few seconds. Reports the share of messages each client got,
their latency from bob's send to the client's receipt (same clock), the share of the talk-spurt's
audio each client got, and the serving node's CPU and memory. Protocol-level clients (Python's
standard library), not browsers: what is measured is the node's side.

    tests/web/load.py --bin target/release/hark-node --clients 50 [--messages 200]

Prints one JSON object. Everything runs on loopback, with --no-mdns; every wait has a deadline.
"""
import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def start_node(binary, name, data_dir, extra):
    args = [binary, "--json", "--no-mdns", "--name", name, "--data-dir", data_dir,
            "--listen", "/ip4/127.0.0.1/tcp/0"] + extra
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(os.path.join(data_dir, "stderr.log"), "w"), text=True)
    ready = json.loads(proc.stdout.readline())
    assert ready["event"] == "ready", ready
    events = []

    def read():
        for line in proc.stdout:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    threading.Thread(target=read, daemon=True).start()
    return proc, ready, events


def send(proc, command):
    proc.stdin.write(json.dumps(command) + "\n")
    proc.stdin.flush()


def wait(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"load.py: timed out waiting for {what}")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Client:
    def __init__(self, host, port, token):
        self.host, self.port = host, port
        conn = http.client.HTTPSConnection(host, port, context=CTX, timeout=30)
        conn.request("POST", "/web/join", json.dumps({"token": token, "name": "load"}),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 201, body
        cookie = response.getheader("Set-Cookie").split(";")[0]
        self.cookie = cookie
        self.page_bytes = 0
        for path in ["/", "/style.css", "/app.js", "/api.js", "/voice.js", "/icon.svg"]:
            conn.request("GET", path, headers={"Cookie": cookie})
            self.page_bytes += len(conn.getresponse().read())
        conn.close()
        self.latencies = {}
        self.audio_bytes = 0
        self.stop = False

    def follow_events(self):
        conn = http.client.HTTPSConnection(self.host, self.port, context=CTX, timeout=60)
        conn.request("GET", "/v1/events?kind=message", headers={"Cookie": self.cookie})
        response = conn.getresponse()
        assert response.status == 200
        kind = None
        while not self.stop:
            line = response.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "message":
                event = json.loads(line[5:])
                parts = event.get("text", "").split()
                if len(parts) == 3 and parts[0] == "load":
                    self.latencies[int(parts[1])] = time.time() - float(parts[2])

    def follow_voice(self):
        sock = ws_open(self.host, self.port, self.cookie)

        def exact(n):
            data = b""
            while len(data) < n:
                chunk = sock.recv(n - len(data))
                if not chunk:
                    raise EOFError
                data += chunk
            return data
        try:
            while not self.stop:
                b0, b1 = exact(2)
                length = b1 & 0x7F
                if length == 126:
                    length = struct.unpack(">H", exact(2))[0]
                elif length == 127:
                    length = struct.unpack(">Q", exact(8))[0]
                payload = exact(length)
                if b0 & 0x0F == 2:
                    self.audio_bytes += len(payload)
        except (EOFError, OSError):
            pass


def ws_open(host, port, cookie):
    raw = socket.create_connection((host, port), timeout=60)
    sock = CTX.wrap_socket(raw, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode()
    origin = f"{host}:{port}"
    sock.sendall((f"GET /web/voice HTTP/1.1\r\nHost: {origin}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Origin: https://{origin}\r\nCookie: {cookie}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise SystemExit("load.py: voice socket closed during the handshake")
        head += chunk
    assert b" 101 " in head.split(b"\r\n")[0], head
    return sock


def ws_send(sock, opcode, payload):
    """One masked frame (a client must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    header = bytes([0x80 | opcode])
    if n < 126:
        header += bytes([0x80 | n])
    else:
        header += bytes([0x80 | 126]) + struct.pack(">H", n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + body)


def talk_from_web(host, port, cookie, wav_path):
    """A web user talks: PCM frames paced at 20 ms, as a page without WebCodecs sends them."""
    import wave
    sock = ws_open(host, port, cookie)
    with wave.open(wav_path) as w:
        pcm = w.readframes(w.getnframes())
    frame = 960 * 2
    ws_send(sock, 1, json.dumps({"type": "start", "room": "lobby", "codec": "pcm"}).encode())
    start = time.monotonic()
    frames = 0
    for offset in range(0, len(pcm) - frame + 1, frame):
        ws_send(sock, 2, pcm[offset:offset + frame])
        frames += 1
        delay = start + frames * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    ws_send(sock, 1, json.dumps({"type": "stop"}).encode())
    return sock, frames


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="hark-web-load-")
    bob_dir, web_dir = os.path.join(tmp, "bob"), os.path.join(tmp, "web")
    os.makedirs(bob_dir)
    os.makedirs(web_dir)
    wav_raw, wav = os.path.join(tmp, "talk-raw.wav"), os.path.join(tmp, "talk.wav")
    subprocess.run(["espeak-ng", "-w", wav_raw, "This is bob on the bridge. All stations, radio check, "
                    "radio check. Please answer in order."], check=True)
    subprocess.run(["sox", wav_raw, "-r", "48000", "-c", "1", "-b", "16", wav], check=True)
    spurt_s = float(subprocess.run(["soxi", "-D", wav], capture_output=True, text=True).stdout)

    bob, bob_ready, bob_events = start_node(args.bin, "bob", bob_dir, [])
    web, _, web_events = start_node(args.bin, "web", web_dir,
                                    ["--peer", bob_ready["listen"][0], "--web", "127.0.0.1:0"])
    try:
        wait("bob and the web node to meet",
             lambda: any(e.get("event") == "presence" for e in web_events), 30)
        url = wait("the web url", lambda: os.path.exists(os.path.join(web_dir, "web/url"))
                   and open(os.path.join(web_dir, "web/url")).read().strip(), 20)
        host, port = url.split("//")[1].strip("/").rsplit(":", 1)
        port = int(port)
        idle_rss = rss_mb(web.pid)
        clients = []
        for _ in range(args.clients):
            link = subprocess.run([args.bin, "web-invite", "--data-dir", web_dir, "--no-qr"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            clients.append(Client(host, port, link.split("#join=")[1]))
        threads = []
        for c in clients:
            for target in (c.follow_events, c.follow_voice):
                t = threading.Thread(target=target, daemon=True)
                t.start()
                threads.append(t)
        time.sleep(1.0)  # every stream attached
        cpu0, t0 = cpu_seconds(web.pid), time.monotonic()
        for i in range(args.messages):
            send(bob, {"cmd": "send", "room": "lobby", "text": f"load {i} {time.time():.6f}"})
            time.sleep(0.1)
        wait("the messages to reach every client",
             lambda: all(len(c.latencies) == args.messages for c in clients), 30)
        chat_cpu = cpu_seconds(web.pid) - cpu0
        chat_s = time.monotonic() - t0
        for c in clients:
            c.audio_bytes = 0
        cpu1, t1 = cpu_seconds(web.pid), time.monotonic()
        send(bob, {"cmd": "voice", "room": "lobby", "wav": wav})
        wait("the talk-spurt to end", lambda: any(e.get("event") == "voice_end" for e in web_events),
             spurt_s + 30)
        time.sleep(0.5)
        voice_cpu = cpu_seconds(web.pid) - cpu1
        voice_s = time.monotonic() - t1
        end = next(e for e in web_events if e.get("event") == "voice_end")
        played_s = end["frames"] * 0.02
        expected = played_s * 48000 * 2
        # A web user of the same node talks (PCM, encoded by the node): the others hear it.
        for c in clients:
            c.audio_bytes = 0
        link = subprocess.run([args.bin, "web-invite", "--data-dir", web_dir, "--no-qr"],
                              capture_output=True, text=True, check=True).stdout.strip()
        talker = Client(host, port, link.split("#join=")[1])
        ends_before = sum(1 for e in web_events if e.get("event") == "voice_end")
        cpu2, t2 = cpu_seconds(web.pid), time.monotonic()
        talker_sock, web_frames = talk_from_web(host, port, talker.cookie, wav)
        wait("the web talker's spurt to end",
             lambda: sum(1 for e in web_events if e.get("event") == "voice_end") > ends_before, 30)
        time.sleep(0.5)
        web_voice_cpu = cpu_seconds(web.pid) - cpu2
        web_voice_s = time.monotonic() - t2
        talker_sock.close()
        web_end = [e for e in web_events if e.get("event") == "voice_end"][-1]
        web_expected = web_end["frames"] * 0.02 * 48000 * 2
        web_audio = sorted(c.audio_bytes / web_expected for c in clients)
        bob_heard = any(e.get("event") == "voice_end" and e.get("frames", 0) >= web_frames
                        for e in bob_events)
        latencies = sorted(l * 1000 for c in clients for l in c.latencies.values())
        pct = lambda p: round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 1)
        audio = sorted(c.audio_bytes / expected for c in clients)
        result = {
            "clients": args.clients,
            "messages": args.messages,
            "delivered_ratio": sum(len(c.latencies) for c in clients) / (args.clients * args.messages),
            "latency_ms_p50": pct(50), "latency_ms_p99": pct(99), "latency_ms_max": round(latencies[-1], 1),
            "audio_ratio_min": round(audio[0], 3), "audio_ratio_median": round(audio[len(audio) // 2], 3),
            "spurt_s": round(played_s, 2),
            "web_talker_audio_ratio_min": round(web_audio[0], 3),
            "web_talker_audio_ratio_median": round(web_audio[len(web_audio) // 2], 3),
            "web_talker_heard_by_peer": bob_heard,
            "node_cpu_web_talker_percent": round(100 * web_voice_cpu / web_voice_s, 1),
            "node_cpu_chat_percent": round(100 * chat_cpu / chat_s, 1),
            "node_cpu_voice_percent": round(100 * voice_cpu / voice_s, 1),
            "node_rss_mb_idle": round(idle_rss, 1), "node_rss_mb_loaded": round(rss_mb(web.pid), 1),
            "page_bytes": clients[0].page_bytes,
        }
        print(json.dumps(result), flush=True)
    finally:
        for c in clients if "clients" in locals() else []:
            c.stop = True
        for proc in (web, bob):
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
