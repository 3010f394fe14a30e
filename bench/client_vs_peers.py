"""Client benchmark: fetch N cmdb_ci_server rows (5 fields) from the emulator with our client and with its peers.

    python bench/client_vs_peers.py                     # 100,000 rows at 100 ms latency (pysnc's default run ~2 min)
    python bench/client_vs_peers.py --rows 20000 --latency-ms 50   # quicker
    python bench/client_vs_peers.py --write-results     # also rewrite the "## Client" section of bench/RESULTS.md

One emulator process (``python -m servicenow_emulator --seed empty --ci-count N --latency-ms L --tls``) serves
every contender over HTTPS, one after the other. Each contender runs in its own child process, so that its peak
RSS is its own (``resource.getrusage`` in the child: the lifetime peak, imports included; the child also reports
its RSS just before the first request, so the table shows what the fetch itself added). Requests are counted by
the emulator (``/emulator/admin/stats`` before and after). Every contender must return the same N distinct
sys_ids (count and checksum are compared), so a fast but wrong client cannot win.

Contenders:
- ours, defaults (sync and async faces): page_size 1000, 4 pages in flight, display_value=false.
- ours, tuned: page_size 10000, 8 pages in flight.
- pysnc 1.2.1 defaults: ``client.GlideRecord(table)`` = batch 100, display_value=all (ServiceNow's own default:
  every field comes back twice, value and display value), rewindable (keeps every row it has read).
- pysnc tuned: batch_size=1000, display_value=False (rewindable=False cannot be used: see the child code).
- pysnow 0.7.9: the idiomatic caller-driven offset loop, limit 1000.
- floor: a raw httpx loop, page 1000, sequential on one keep-alive connection, sysparm_no_count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TABLE = "cmdb_ci_server"
FIELDS = ["sys_id", "name", "ip_address", "os", "cpu_count"]
AUTH = ("admin", "admin")
ROUTE = f"GET /api/now/table/{TABLE}"

CONTENDERS: dict[str, str] = {
    "ours": "ours, defaults (sync)",
    "ours-async": "ours, defaults (async)",
    "ours-tuned": "ours, tuned: page 10000 x 8 in flight",
    "pysnc": "pysnc defaults: batch 100, display_value=all",
    "pysnc-tuned": "pysnc tuned: batch 1000, display_value=False",
    "pysnow": "pysnow: offset loop, limit 1000",
    "httpx-floor": "floor: raw httpx loop, page 1000, sequential",
}
PEERS = ("pysnc", "pysnc-tuned", "pysnow", "httpx-floor")


NOTES = [
    "Why (read with the table):",
    "",
    "- Ours keeps 4 pages in flight (8 tuned) after one counted first page, so the 100 ms latency is paid about",
    "  once per 4 pages; pysnow, tuned pysnc and the floor wait for each page before asking for the next, so they",
    "  are latency-bound at 100 x (100 ms + serving). Later pages send `sysparm_no_count`: one COUNT per read.",
    "- pysnc's defaults make 10x the requests (100-row pages) and ask for `display_value=all`, which doubles every",
    "  field. Its GlideRecord keeps every row it has read (rewindable by default), hence ~300 MiB at 100,000 rows;",
    "  `rewindable=False` would free them only under `for r in gr`, which is broken in pysnc 1.2.1 (its first step",
    "  sets the page's last row to None), so the tuned run keeps the default.",
    "- Our peak RSS starts higher (~79 MiB before the first request) because `servicenow_blocks` imports Prefect",
    "  for the credentials block; the fetch itself adds ~7 MiB whether it reads 10,000 or 100,000 rows. The tuned",
    "  run holds up to 9 pages of 10,000 rows, trading ~70 MiB for ~3x the speed.",
]


# --- children: one contender each ---------------------------------------------------------------------------
def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Tally:
    """Counts rows and checks that each has the 5 fields; an order-free checksum of the sys_ids."""

    def __init__(self) -> None:
        self.rows = 0
        self.checksum = 0

    def add(self, sys_id: str) -> None:
        self.rows += 1
        self.checksum = (self.checksum + int(sys_id, 16)) % (1 << 64)


def child(name: str, url: str, ca: str, rows: int) -> dict[str, Any]:
    os.environ["REQUESTS_CA_BUNDLE"] = ca  # pysnc and pysnow: requests' env bundle overrides verify= (notes §0)
    tally = Tally()
    limit = rows

    if name in ("ours", "ours-async", "ours-tuned"):
        from servicenow_blocks import ServiceNowCredentials

        tuned = {"page_size": 10000, "concurrency": 8} if name == "ours-tuned" else {}
        creds = ServiceNowCredentials(instance=url, username=AUTH[0], password=AUTH[1], ca_bundle=ca, **tuned)
        if name == "ours-async":
            import asyncio

            async def fetch() -> None:
                async with creds.get_async_client() as client:
                    async for row in client.aiter_records(TABLE, fields=FIELDS, limit=limit):
                        tally.add(row["sys_id"])

            start_rss, started = _rss_kib(), time.perf_counter()
            asyncio.run(fetch())
        else:
            with creds.get_client() as client:
                start_rss, started = _rss_kib(), time.perf_counter()
                for row in client.iter_records(TABLE, fields=FIELDS, limit=limit):
                    tally.add(row["sys_id"])

    elif name in ("pysnc", "pysnc-tuned"):
        from pysnc import ServiceNowClient

        client = ServiceNowClient(url, AUTH, verify=ca)
        if name == "pysnc":
            gr = client.GlideRecord(TABLE)  # batch 100, display_value=all, rewindable
        else:
            # rewindable=False is no help: it frees rows only under `for r in gr`, and that path is broken in 1.2.1
            # (its first step sets results[-1] = None, so the page's last row raises NoRecordException).
            gr = client.GlideRecord(TABLE, batch_size=1000)
            gr.display_value = False
        gr.fields = FIELDS
        gr.limit = limit
        start_rss, started = _rss_kib(), time.perf_counter()
        gr.query()
        while gr.next():
            tally.add(gr.get_value("sys_id"))

    elif name == "pysnow":
        import pysnow

        client = pysnow.Client(host=url.split("://", 1)[1], user=AUTH[0], password=AUTH[1], use_ssl=True)
        res = client.resource(api_path=f"/table/{TABLE}")
        start_rss, started = _rss_kib(), time.perf_counter()
        offset = 0
        while offset < limit:
            size = min(1000, limit - offset)
            page = res.get(query="ORDERBYsys_id", limit=size, offset=offset, fields=FIELDS).all()
            for row in page:
                tally.add(row["sys_id"])
            offset += len(page)
            if len(page) < size:
                break

    elif name == "httpx-floor":
        import httpx

        with httpx.Client(base_url=url, auth=AUTH, verify=ca, timeout=60) as http:
            start_rss, started = _rss_kib(), time.perf_counter()
            offset = 0
            while offset < limit:
                size = min(1000, limit - offset)
                params = {
                    "sysparm_query": "ORDERBYsys_id",
                    "sysparm_fields": ",".join(FIELDS),
                    "sysparm_limit": size,
                    "sysparm_offset": offset,
                    "sysparm_no_count": "true",
                    "sysparm_exclude_reference_link": "true",
                }
                response = http.get(f"/api/now/table/{TABLE}", params=params)
                response.raise_for_status()
                page = response.json()["result"]
                for row in page:
                    tally.add(row["sys_id"])
                offset += len(page)
                if len(page) < size:
                    break
    else:
        raise SystemExit(f"unknown contender {name}")

    seconds = time.perf_counter() - started
    return {
        "name": name,
        "rows": tally.rows,
        "checksum": tally.checksum,
        "seconds": seconds,
        "start_rss_mib": start_rss / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# --- the parent: emulator, children, table ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, rows: int, latency_ms: float, workdir: Path):
        import httpx

        self.port, self.tls_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.https_url = f"https://127.0.0.1:{self.tls_port}"
        self.ca = workdir / "tls" / "ca.pem"
        self.args = [
            sys.executable,
            "-m",
            "servicenow_emulator",
            "--seed",
            "empty",
            "--ci-count",
            str(rows),
            "--latency-ms",
            str(latency_ms),
            "--tls",
            "--port",
            str(self.port),
            "--tls-port",
            str(self.tls_port),
            "--tls-dir",
            str(workdir / "tls"),
        ]
        self.log = open(workdir / "emulator.log", "w")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.http = httpx.Client(base_url=self.url, auth=AUTH, timeout=30)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"emulator exited: {(workdir / 'emulator.log').read_text()[-2000:]}")
            try:
                if self.http.get("/emulator/health").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit("emulator did not start")

    def requests(self) -> int:
        return self.http.get("/emulator/admin/stats").json()["result"]["by_route"].get(ROUTE, 0)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.http.close()


def run_child(emulator: Emulator, name: str, rows: int) -> dict[str, Any]:
    before = emulator.requests()
    argv = [__file__, "--child", name, "--url", emulator.https_url, "--ca", str(emulator.ca), "--rows", str(rows)]
    out = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["requests"] = emulator.requests() - before
    result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


def render(results: list[dict[str, Any]], flat: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    ours = next(r for r in results if r["name"] == "ours")
    lines = [
        f"Command: `{command}`",
        "",
        f"{args.rows:,} `{TABLE}` rows, fields `{','.join(FIELDS)}`, emulator latency {args.latency_ms:g} ms per "
        f"request, HTTPS, one emulator process serving the contenders one after the other; each contender in its "
        f"own child process. Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        "| contender | rows/s | rows/s vs ours (defaults) | time (s) | requests | peak RSS (MiB) "
        "| RSS added by the fetch (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = r["rows_per_s"] / ours["rows_per_s"]
        lines.append(
            f"| {CONTENDERS[r['name']]} | {r['rows_per_s']:,.0f} | {ratio:.3g}x | {r['seconds']:.2f} | "
            f"{r['requests']:,} | {r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - r['start_rss_mib']:.1f} |"
        )
    peers = [r for r in results if r["name"] in PEERS and r["name"] != "httpx-floor"]
    if peers:
        best = max(peers, key=lambda r: r["rows_per_s"])
        pysnc = next((r for r in results if r["name"] == "pysnc"), None)
        lines += ["", "Targets (ours, defaults):"]
        if pysnc:
            ratio = ours["rows_per_s"] / pysnc["rows_per_s"]
            lines.append(f"- vs pysnc defaults: {ratio:.1f}x (target >= 3x): {'met' if ratio >= 3 else 'MISSED'}")
        ratio = ours["rows_per_s"] / best["rows_per_s"]
        lines.append(
            f"- vs the best-tuned peer ({CONTENDERS[best['name']]}): {ratio:.1f}x (target >= 1.5x): "
            f"{'met' if ratio >= 1.5 else 'MISSED'}"
        )
    if flat:
        small, large = flat
        lines += [
            "",
            "Memory flatness, ours (defaults, sync), same emulator:",
            "",
            "| rows fetched | peak RSS (MiB) | RSS added by the fetch (MiB) |",
            "|---:|---:|---:|",
        ]
        for r in flat:
            lines.append(f"| {r['rows']:,} | {r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - r['start_rss_mib']:.1f} |")
        growth = (large["peak_rss_mib"] - large["start_rss_mib"]) - (small["peak_rss_mib"] - small["start_rss_mib"])
        lines.append("")
        lines.append(f"{large['rows'] // small['rows']}x the rows added {growth:+.1f} MiB of peak RSS.")
    lines += ["", *NOTES]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace (or add) the ``## Client`` section of bench/RESULTS.md, leaving every other section alone."""
    path = ROOT / "bench" / "RESULTS.md"
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Client"), None)
    section = ["## Client\n", "\n", text, "\n"]
    if start is None:
        if lines and lines[-1].strip():
            lines.append("\n")
        lines += section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section
    path.write_text("".join(lines).rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma list of contenders")
    parser.add_argument("--flat-rows", type=int, default=10_000, help="the small run of the flatness check (0: skip)")
    parser.add_argument("--write-results", action="store_true", help="rewrite the ## Client section of RESULTS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.ca, args.rows)))
        return

    command = " ".join([".venv/bin/python bench/client_vs_peers.py", *sys.argv[1:]])
    names = [n for n in args.only.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="client-bench-") as tmp:
        emulator = Emulator(args.rows, args.latency_ms, Path(tmp))
        try:
            run_child(emulator, "httpx-floor", min(args.rows, 2000))  # warm the emulator (caches, TLS)
            results = []
            for name in names:
                result = run_child(emulator, name, args.rows)
                print(
                    f"{CONTENDERS[name]:<60} {result['rows_per_s']:>10,.0f} rows/s {result['seconds']:>8.2f} s "
                    f"{result['requests']:>6} requests  peak RSS {result['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
                results.append(result)
            expected = {(r["rows"], r["checksum"]) for r in results}
            if len(expected) != 1 or results[0]["rows"] != args.rows:
                raise SystemExit(f"contenders disagree on the rows: {[(r['name'], r['rows']) for r in results]}")
            flat = []
            if args.flat_rows and "ours" in names and args.flat_rows < args.rows:
                flat = [run_child(emulator, "ours", args.flat_rows), next(r for r in results if r["name"] == "ours")]
        finally:
            emulator.stop()
    text = render(results, flat, args, command)
    print()
    print(text)
    if args.write_results:
        write_section(text)


if __name__ == "__main__":
    main()
