#!/usr/bin/env python3
"""A small Hark bot (docs/integrations.md): answers `!ping` and `!peers` in one room.

It is a client of a running node's control socket (DATA_DIR/control.sock), so it runs beside
`hark` or a relay without a second node, and the node signs what it says. Python's standard
library only.

    hark-bot.py [--data-dir DIR] ROOM
"""

import argparse
import json
import os
import socket
import sys


def main() -> int:
    default_dir = os.environ.get("HARK_DATA_DIR") or os.path.expanduser("~/.local/share/hark")
    parser = argparse.ArgumentParser(description="answer !ping and !peers in ROOM")
    parser.add_argument("--data-dir", default=default_dir)
    parser.add_argument("room")
    args = parser.parse_args()

    path = os.path.join(args.data_dir, "control.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        print(f"hark-bot: no node running at {path}: {e.strerror}", file=sys.stderr)
        return 2
    lines = sock.makefile("r", encoding="utf-8", errors="replace")

    def send(command: dict) -> None:
        sock.sendall((json.dumps(command) + "\n").encode())

    # Only messages in our room, and the answers to our own commands.
    send({"cmd": "subscribe", "rooms": [args.room], "kinds": ["message"]})
    for line in lines:
        event = json.loads(line)
        if event.get("event") == "ready":
            print(f"hark-bot: answering in {args.room} as {event['name']}", flush=True)
        elif event.get("event") == "message":
            words = event["text"].split()
            if words[:1] == ["!ping"]:
                send({"cmd": "send", "room": args.room, "text": f"pong, {event['name']}"})
            elif words[:1] == ["!peers"]:
                send({"cmd": "peers", "id": "peers"})
        elif event.get("event") == "peers" and event.get("cmd_id") == "peers":
            names = sorted(p["name"] or p["peer_id"][-6:] for p in event["peers"])
            send({"cmd": "send", "room": args.room,
                  "text": f"{len(names)} peers: {', '.join(names) or 'none'}"})
        elif event.get("event") == "error":
            print(f"hark-bot: {event.get('code')}: {event.get('detail')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
