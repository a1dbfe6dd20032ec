#!/usr/bin/env python3
"""An mDNS client that shares no code with nodelua or Avahi: python3-zeroconf
browses _nodelua._tcp for SECONDS and prints what it resolved as JSON:
[{name, port, addresses, txt: {key: value}, txt_bytes}]."""
import json
import socket
import sys
import time

from zeroconf import ServiceBrowser, Zeroconf

TYPE = "_nodelua._tcp.local."


class Collector:
    def __init__(self):
        self.names = set()

    def add_service(self, zc, type_, name):
        self.names.add(name)

    def update_service(self, zc, type_, name):
        self.names.add(name)

    def remove_service(self, zc, type_, name):
        self.names.discard(name)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3
    zc = Zeroconf()
    collector = Collector()
    ServiceBrowser(zc, TYPE, collector)
    time.sleep(seconds)
    found = []
    for name in sorted(collector.names):
        info = zc.get_service_info(TYPE, name, timeout=3000)
        if info is None:
            continue
        txt = {k.decode(): (v.decode() if v is not None else True) for k, v in info.properties.items()}
        found.append({
            "name": name[: -len("." + TYPE)],
            "port": info.port,
            "addresses": [socket.inet_ntoa(a) for a in info.addresses if len(a) == 4],
            "txt": txt,
            "txt_bytes": len(info.text),
        })
    zc.close()
    print(json.dumps(found))


if __name__ == "__main__":
    main()
