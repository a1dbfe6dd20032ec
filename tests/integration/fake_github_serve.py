#!/usr/bin/env python3
"""Serves one release folder as a fake GitHub (fake_github.py) until
killed: for a test whose agent cannot reach this process's loopback (in a
container). Usage: fake_github_serve.py REPOSITORY TAG FOLDER URL_FILE;
the API's base URL is written to URL_FILE once it listens."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_github import FakeGitHub  # noqa: E402

repository, tag, folder, url_file = sys.argv[1:5]
fake = FakeGitHub(repository)
assets = {}
for name in os.listdir(folder):
    with open(os.path.join(folder, name), "rb") as f:
        assets[name] = f.read()
fake.add(tag, assets)
with open(url_file + ".tmp", "w") as f:
    f.write(fake.api_url)
os.rename(url_file + ".tmp", url_file)
while True:
    time.sleep(3600)
