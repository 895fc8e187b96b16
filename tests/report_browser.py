"""Render a Snakemake HTML report in headless Chromium and say what a reader would see.

A copy of the report gets a script that, once the page has loaded, opens every result the
way a click on it does (``app.setView``), waits for the image to decode and records its
natural and displayed size, and collects every link of every view. Chromium prints the
resulting DOM (``--dump-dom``), whose last element carries the record as JSON.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

_PROBE = """
<script>
window.addEventListener("load", async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const out = { results: {}, links: [] };
  const seen = new Set();
  const collect = () => {
    for (const a of document.querySelectorAll("a[href]")) {
      const href = a.getAttribute("href");
      if (!seen.has(href)) { seen.add(href); out.links.push(href); }
    }
  };
  while (typeof app === "undefined") await sleep(100);  // React mounts after load
  await sleep(500);
  collect();
  for (const [path, entry] of Object.entries(results)) {
    const mime = getResultMimeType(path);
    const record = { mime: mime, caption: (entry.caption || "").length };
    if (mime.startsWith("image/")) {
      app.setView({ content: "img", contentPath: entry.data_uri, resultPath: path });
      await sleep(300);
      const img = [...document.querySelectorAll("img")].find((i) => i.src === entry.data_uri);
      if (img && !img.complete) {
        await new Promise((r) => { img.onload = r; img.onerror = r; });
      }
      const box = img ? img.getBoundingClientRect() : { width: 0, height: 0 };
      Object.assign(record, {
        shown: !!img, natural_width: img ? img.naturalWidth : 0,
        natural_height: img ? img.naturalHeight : 0, width: box.width, height: box.height,
      });
    }
    out.results[path] = record;
    app.showResultInfo(path);  // the result's menu: its caption and download link
    await sleep(200);
    collect();
  }
  for (const category of Object.keys(categories)) {
    app.showCategory(category);
    await sleep(200);
    collect();
  }
  const pre = document.createElement("pre");
  pre.id = "report-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def render(report: Path, scratch: Path, budget_ms: int = 120_000) -> dict[str, Any]:
    """What Chromium shows of ``report``: ``results`` (path -> mime, caption length and, for
    images, whether shown and its natural and displayed size) and ``links`` (every href)."""
    assert CHROMIUM, "chromium is not installed"
    page = scratch / "report-probe.html"
    text = report.read_text(encoding="utf-8")
    head, body_end, tail = text.rpartition("</body>")  # the first is inside a script
    page.write_text(head + _PROBE + body_end + tail, encoding="utf-8")
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1400,1000",
            f"--virtual-time-budget={budget_ms}",
            f"--user-data-dir={scratch / 'chromium-profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = re.search(r'<pre id="report-probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the probe did not finish: rc {proc.returncode}, {proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def broken_links(links: list[str], base: Path) -> list[str]:
    """Links that lead nowhere: a file path that does not exist beside the report, or a data
    URI that does not decode to any bytes. In-page anchors and web addresses pass."""
    bad = []
    for href in links:
        if href.startswith(("#", "http://", "https://", "mailto:", "javascript:")):
            continue
        if href.startswith("data:"):
            head, _, body = href.partition(",")
            try:
                data = base64.b64decode(body) if head.endswith(";base64") else body.encode()
            except ValueError:
                data = b""
            if not data:
                bad.append(href[:80])
        elif not (base / href.split("#")[0]).exists():
            bad.append(href)
    return bad
