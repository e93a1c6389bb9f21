"""Waiting on a page under the site's Content-Security-Policy, for the browser tests."""

from __future__ import annotations

import time


def wait_until(page, expression: str, *, timeout: float = 30.0) -> None:
    """Evaluate the JavaScript `expression` in `page` until it is truthy, or fail after `timeout` seconds.

    Playwright's `wait_for_function` re-evaluates its predicate inside the page with `eval`, which the site's
    policy (`script-src 'self'`, no 'unsafe-eval') forbids; Playwright's escape hatch for that is racy
    (microsoft/playwright#36982), so a browser test failed now and then with an EvalError. One `page.evaluate`
    per poll runs in the DevTools protocol's own synchronous evaluation, which the policy allows.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout:.0f} s: {expression}")
        page.wait_for_timeout(50)
