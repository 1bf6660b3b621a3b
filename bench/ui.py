"""The web UI's weight and speed: the gzip size of the built frontend and the time to first render of a
thread page with 200 posts in Chromium, for this checkout's build next to a baseline build.

The baseline is another `frontend/dist` (e.g. main's before a change: `--baseline-dist /tmp/base-dist`);
without one, only this build is measured. Both builds are served by their own `forum web` on the same
database, and page loads alternate between them (A B A B …). Time to first render = from navigation
start until the thread's title and its first page of posts are in the DOM and painted (a
requestAnimationFrame after they appear); for the canonical server-rendered URL `/o/<org>/t/<id>` also
the browser's first-contentful-paint.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import re
from pathlib import Path
from typing import Any

import httpx

from bench.harness import forum_env, forum_web, median, print_table, progress, running, servers, write_json

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench password 1234"
CHROMIUM = os.environ.get("FORUM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Resolves once the title and at least `n` posts are rendered, after the next frame (painted).
WAIT_RENDERED = """(n) => new Promise((resolve) => {
  const check = () => {
    const title = document.querySelector('[data-testid="thread-title"]');
    if (title && document.querySelectorAll('[data-testid="post"]').length >= n) {
      requestAnimationFrame(() => resolve(performance.now()));
    } else {
      requestAnimationFrame(check);
    }
  };
  check();
})"""
FCP = """() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime ?? null"""


def gzip_sizes(dist: Path) -> dict[str, int]:
    """Raw and gzip (level 9) bytes of the JS and CSS the first page loads (what index.html references), and
    of every asset (chunks loaded on demand included)."""
    index = (dist / "index.html").read_text()
    first = set(re.findall(r'(?:src|href)="/assets/([^"]+)"', index))
    sizes = {"raw_bytes": 0, "gzip_bytes": 0, "all_gzip_bytes": 0}
    for path in sorted((dist / "assets").glob("*")):
        if path.suffix in (".js", ".css"):
            data = path.read_bytes()
            gz = len(gzip.compress(data, 9))
            sizes["all_gzip_bytes"] += gz
            if path.name in first:
                sizes["raw_bytes"] += len(data)
                sizes["gzip_bytes"] += gz
    return sizes


async def seed(base_url: str, posts: int) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post(
            "/api/v1/auth/register", json={"username": "benchui", "email": "benchui@example.com", "password": PASSWORD}
        )
        r.raise_for_status()
        (await client.post("/api/v1/auth/login", json={"login": "benchui", "password": PASSWORD})).raise_for_status()
        client.headers["x-csrftoken"] = client.cookies.get("csrftoken") or ""
        (
            await client.post("/api/v1/orgs", json={"slug": "benchui", "name": "Bench UI", "visibility": "public"})
        ).raise_for_status()
        limits = {"posting": {"enabled": False}, "spam": {"enabled": False}}
        (await client.put("/api/v1/o/benchui/settings", json=limits)).raise_for_status()
        (await client.post("/api/v1/o/benchui/categories", json={"name": "General"})).raise_for_status()
        r = await client.post(
            "/api/v1/o/benchui/threads",
            json={"category": "general", "title": "A long thread", "body": "The **first** post of a long thread."},
        )
        r.raise_for_status()
        thread_id = r.json()["thread"]["id"]
        for n in range(1, posts):
            body = f"Reply {n}: some *markdown* with `code` and a [link](https://example.com/{n}).\n\n- one\n- two"
            (await client.post(f"/api/v1/o/benchui/threads/{thread_id}/posts", json={"body": body})).raise_for_status()
        return "benchui", thread_id


async def first_render_ms(browser: Any, url: str, first_page: int) -> tuple[float, float | None]:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(url, wait_until="commit")
        rendered = float(await asyncio.wait_for(page.evaluate(WAIT_RENDERED, first_page), timeout=30))
        fcp = await page.evaluate(FCP)
        return rendered, (float(fcp) if fcp is not None else None)
    finally:
        await context.close()


async def measure(targets: dict[str, str], paths: dict[str, str], loads: int, first_page: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    results: dict[str, dict[str, list[float]]] = {
        f"{name} {kind}": {"render": [], "fcp": []} for name in targets for kind in paths
    }
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, base in targets.items():  # warm each server once
                for kind, path in paths.items():
                    if kind == "canonical" and name == "baseline":
                        continue
                    try:
                        await first_render_ms(browser, base + path, first_page)
                    except TimeoutError:
                        print(f"  ! warm-up of {base + path}: not rendered within 30 s", flush=True)
            for _ in range(loads):
                for name, base in targets.items():
                    for kind, path in paths.items():
                        if kind == "canonical" and name == "baseline":
                            continue
                        try:
                            rendered, fcp = await first_render_ms(browser, base + path, first_page)
                        except TimeoutError:
                            print(f"  ! {name} {kind}: not rendered within 30 s", flush=True)
                            continue
                        results[f"{name} {kind}"]["render"].append(rendered)
                        if fcp is not None:
                            results[f"{name} {kind}"]["fcp"].append(fcp)
        finally:
            await browser.close()
    return {k: v for k, v in results.items() if v["render"]}


def run(args: argparse.Namespace) -> None:
    posts = 200
    loads = 3 if args.quick else (args.rounds or 9)
    dists = {"this build": Path(os.environ.get("FORUM_BENCH_DIST") or ROOT / "frontend" / "dist")}
    baseline = getattr(args, "baseline_dist", None) or os.environ.get("FORUM_BENCH_BASELINE_DIST")
    if baseline:
        dists = {"baseline": Path(baseline), **dists}
    sizes = {name: gzip_sizes(dist) for name, dist in dists.items()}
    print_table(
        "frontend bundle: JS + CSS the first page loads (and every chunk, on-demand pages included)",
        ["build", "raw KiB", "gzip KiB", "all chunks gzip KiB"],
        [[n, s["raw_bytes"] / 1024, s["gzip_bytes"] / 1024, s["all_gzip_bytes"] / 1024] for n, s in sizes.items()],
    )
    with servers("ui") as infra:
        procs = {
            name: forum_web(infra, forum_env(infra, FORUM_FRONTEND_DIST=str(dist)), log_name=f"web-{i}.log")
            for i, (name, dist) in enumerate(dists.items())
        }
        with running(*procs.values()):
            first = next(iter(procs.values()))
            progress(f"seeding a thread with {posts} posts")
            org, thread_id = asyncio.run(seed(first.base_url, posts))
            paths = {"app": f"/#/o/{org}/t/{thread_id}", "canonical": f"/o/{org}/t/{thread_id}"}
            probe = httpx.get(procs["this build"].base_url + paths["canonical"])
            if probe.status_code != 200 or "text/html" not in probe.headers.get("content-type", ""):
                paths.pop("canonical")  # a build before the server-rendered thread page
            progress(f"{loads} loads per page, alternating builds")
            result = asyncio.run(measure({n: p.base_url for n, p in procs.items()}, paths, loads, first_page=50))
    rows = []
    for key, values in result.items():
        fcp = median(values["fcp"]) if values["fcp"] else None
        rows.append([key, median(values["render"]), fcp if fcp is not None else "-"])
    print_table(
        f"thread page with {posts} posts: time to first render (median ms over {loads} loads)",
        ["build / URL", "title + 50 posts painted", "first contentful paint"],
        rows,
    )
    write_json("ui", {"sizes": sizes, "render": result}, enabled=not args.no_json)
