"""`python -m unmask_client`: scan files, list, show and delete scans from a shell or a CI pipeline.

Configuration: UNMASK_TOKEN (an API token, from the dashboard's "API token" page or POST /api/v1/auth/token/)
and UNMASK_URL (default http://127.0.0.1:8000); `--url` overrides UNMASK_URL.

Exit codes, so a pipeline can gate on a verdict (`scan --wait`, `get`):
  0  every finished scan is real or has no face (or, without --wait, every file was accepted)
  1  at least one scan is fake
  2  at least one scan is uncertain (and none is fake or failed)
  3  at least one scan failed, or the server refused a file (and none is fake)
  4  usage, authentication, network or server error, or --wait ran out of time
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from unmask_client.api import ApiError, UnmaskApi

EXIT_OK = 0
EXIT_FAKE = 1
EXIT_UNCERTAIN = 2
EXIT_FAILED = 3
EXIT_ERROR = 4

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED_STATUSES = {"done", "failed"}
_POLL_FIRST_S = 0.5
_POLL_MAX_S = 5.0


def exit_code_for(scans: list[dict[str, Any]]) -> int:
    """The exit code that sums up these scans (API representations; a refused upload counts as failed).

    A fake verdict outranks everything, since gating on it is the point; then a failure, because nothing is
    known about that file; then an uncertain verdict. Scans still running do not change the code.
    """
    statuses = {scan.get("status") for scan in scans}
    verdicts = {scan.get("verdict") for scan in scans if scan.get("status") == "done"}
    if "fake" in verdicts:
        return EXIT_FAKE
    if "failed" in statuses or "rejected" in statuses:
        return EXIT_FAILED
    if "uncertain" in verdicts:
        return EXIT_UNCERTAIN
    return EXIT_OK


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Parse the arguments, run the command and return its exit code (see the module docstring)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = _parser()
    try:
        options = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits 2 on a usage error, which here would read as "uncertain".
        return EXIT_OK if exc.code == 0 else EXIT_ERROR
    token = os.environ.get("UNMASK_TOKEN", "").strip()
    if not token:
        print("unmask: set UNMASK_TOKEN to your API token (dashboard > API token).", file=stderr)
        return EXIT_ERROR
    api = UnmaskApi(options.url, token, request_timeout=min(options.timeout, 120.0))
    try:
        return options.handler(api, options, stdout, stderr)
    except ApiError as exc:
        prefix = "authentication failed: " if exc.is_auth_error else ""
        print(f"unmask: {prefix}{exc.message}", file=stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unmask_client",
        description="Ask an Unmask server whether face photos and videos are real or deepfakes.",
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=os.environ.get("UNMASK_URL", DEFAULT_URL), help="server (env UNMASK_URL)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a summary")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds --wait polls before giving up")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = commands.add_parser("scan", help="upload files, or give links (http:// or https://), to scan")
    scan.add_argument("files", nargs="+", metavar="FILE_OR_LINK")
    scan.add_argument("--wait", action="store_true", help="wait for every result; the exit code then gives it")
    scan.set_defaults(handler=_scan)

    listing = commands.add_parser("list", help="list your scans, newest first")
    listing.add_argument("--status", choices=["fetching", "queued", "processing", "done", "failed"])
    listing.add_argument("--verdict", choices=["real", "fake", "uncertain", "no_face"])
    listing.add_argument("--kind", choices=["image", "video"])
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--page-size", type=int, default=20)
    listing.set_defaults(handler=_list)

    get = commands.add_parser("get", help="show one scan; the exit code reflects its verdict")
    get.add_argument("scan_id", metavar="ID")
    get.add_argument("--wait", action="store_true", help="wait until the scan has finished")
    get.set_defaults(handler=_get)

    delete = commands.add_parser("delete", help="delete a scan and its file")
    delete.add_argument("scan_id", metavar="ID")
    delete.set_defaults(handler=_delete)

    # The shared options are accepted after the command too (`scan --json FILE`), where people put them.
    for subparser in (scan, listing, get, delete):
        subparser.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        subparser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        subparser.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _scan(api: UnmaskApi, options: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    deadline = time.monotonic() + options.timeout
    # An argument that is a link is downloaded by the server (scan by URL); any other names a local file.
    links = {argument for argument in options.files if argument.startswith(("http://", "https://"))}
    missing = [argument for argument in options.files if argument not in links and not Path(argument).is_file()]
    if missing:
        print(f"unmask: no such file: {', '.join(missing)}", file=stderr)
        return EXIT_ERROR
    outcomes: list[dict[str, Any]] = []
    for path in options.files:
        try:
            if path in links:
                scan = api.scan_link(path, deadline=deadline)
            else:
                scan = api.scan_upload(Path(path), deadline=deadline)
        except ApiError as exc:
            if not exc.is_upload_rejection:
                raise
            outcomes.append({"file": str(path), "status": "rejected", "error": exc.message})
            continue
        outcomes.append({"file": str(path), **scan})
    if options.wait:
        for index, outcome in enumerate(outcomes):
            if outcome["status"] != "rejected":
                outcomes[index] = {"file": outcome["file"], **_wait_for(api, outcome["url"], deadline=deadline)}
    _print_scans(outcomes, as_json=options.json, stdout=stdout)
    return exit_code_for(outcomes)


def _get(api: UnmaskApi, options: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if options.wait:
        scan = _wait_for(api, options.scan_id, deadline=time.monotonic() + options.timeout)
    else:
        scan = api.scan_get(options.scan_id)
    _print_scans([scan], as_json=options.json, stdout=stdout, single=True)
    return exit_code_for([scan])


def _list(api: UnmaskApi, options: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    page = api.scan_list(
        filters={
            "status": options.status,
            "verdict": options.verdict,
            "kind": options.kind,
            "page": options.page,
            "page_size": options.page_size,
        }
    )
    if options.json:
        print(json.dumps(page, indent=2), file=stdout)
    else:
        _print_scans(page["results"], as_json=False, stdout=stdout)
        print(f"{len(page['results'])} of {page['count']} scans (page {options.page})", file=stdout)
    return EXIT_OK


def _delete(api: UnmaskApi, options: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    api.scan_delete(options.scan_id)
    if options.json:
        print(json.dumps({"deleted": options.scan_id}), file=stdout)
    else:
        print(f"deleted {options.scan_id}", file=stdout)
    return EXIT_OK


def _wait_for(api: UnmaskApi, scan_id_or_url: str, *, deadline: float) -> dict[str, Any]:
    """Poll the scan until it is done or failed; ApiError when `deadline` passes first."""
    interval = _POLL_FIRST_S
    while True:
        scan = api.scan_get(scan_id_or_url)
        if scan["status"] in FINISHED_STATUSES:
            return scan
        if time.monotonic() + interval > deadline:
            raise ApiError(f"scan {scan['id']} was still {scan['status']} when --timeout ran out")
        time.sleep(interval)
        interval = min(interval * 1.5, _POLL_MAX_S)


def _print_scans(scans: list[dict[str, Any]], *, as_json: bool, stdout: TextIO, single: bool = False) -> None:
    if as_json:
        print(json.dumps(scans[0] if single else scans, indent=2), file=stdout)
        return
    for scan in scans:
        print(_summary_line(scan), file=stdout)


def _summary_line(scan: dict[str, Any]) -> str:
    name = scan.get("file") or scan.get("original_filename") or "?"
    if scan.get("status") == "rejected":
        return f"{name}\trejected\t{scan['error']}"
    outcome = scan.get("status", "?")
    if outcome == "done":
        probability = scan.get("fake_probability")
        outcome = scan.get("verdict") or "done"
        if probability is not None:
            outcome += f" (fake probability {probability:.2f})"
    elif outcome == "failed" and scan.get("error"):
        outcome += f": {scan['error']}"
    return f"{name}\t{outcome}\t{scan.get('id', '')}\t{scan.get('page_url', '')}"
