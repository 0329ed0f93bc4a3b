"""Drives the gateway's web console in headless Chromium (the system's /usr/bin/chromium,
through Playwright) and prints what it saw as one JSON object.

Usage: console_browser.py - (the scenario on stdin):

    {"base": "http://127.0.0.1:PORT",
     "approver": TOKEN, "outsider": TOKEN,
     "ready_file": PATH,            # written once the inbox is live: start the held call then
     "delegation": ID | null,       # a delegation the approver gave: revoked on the status page
     "screenshots": DIR | null}     # console-inbox.png, console-audit.png, console-status.png

The approver signs in, waits on the inbox until a held call appears (without reloading),
the outsider signs in (a second browser) and looks at their inbox, a form posted without
its CSRF token is answered, the approver approves, then searches the audit log for the
call, opens its record, reads the status page (and revokes the delegation there), and asks
who can reach the tool. Failures print {"fatal": "..."}.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 60_000


def browser(p):
    """A fresh Chromium with its own profile (cookies are not shared between two)."""
    profile = tempfile.mkdtemp(prefix="mcpgate-chromium-")
    ctx = p.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=ARGS,
        viewport={"width": 1280, "height": 860},
    )
    ctx.set_default_timeout(WAIT_MS)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    return ctx, page


def sign_in(page, base, token):
    page.goto(base + "/console")
    page.fill("input[name=token]", token)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("#inbox")


def run(sc, report):
    base = sc["base"]
    shots = sc.get("screenshots")
    with sync_playwright() as p:
        approver, page = browser(p)
        first = page.goto(base + "/console")
        report["unsigned_url"] = page.url
        report["csp"] = first.headers.get("content-security-policy") if first else None
        sign_in(page, base, sc["approver"])
        report["cookies"] = [
            {k: c[k] for k in ("name", "httpOnly", "secure", "sameSite", "path")}
            for c in approver.cookies()
        ]
        page.wait_for_selector("html[data-live]")
        page.evaluate("window.__sameDocument = true")
        with open(sc["ready_file"], "w") as f:
            f.write("ready")
        card = page.wait_for_selector("article.approval")
        report["same_document"] = page.evaluate("window.__sameDocument === true")
        held_id = card.get_attribute("data-id")
        report["held"] = {"id": held_id, "text": card.inner_text()}
        if shots:
            page.screenshot(path=os.path.join(shots, "console-inbox.png"), full_page=True)

        outsider, opage = browser(p)
        sign_in(opage, base, sc["outsider"])
        report["outsider"] = {
            "cards": opage.locator("article.approval").count(),
            "inbox": opage.locator("#inbox").inner_text(),
        }
        outsider.close()

        # The approve form without its CSRF token, submitted by the browser itself.
        form = f'form[action="/console/approvals/{held_id}/approve"]'
        page.eval_on_selector(form + " input[name=csrf]", "e => e.remove()")
        with page.expect_response(lambda r: r.url.endswith("/approve")) as answer:
            page.click(form + " button")
        report["without_csrf"] = answer.value.status
        page.goto(base + "/console")
        page.fill(form + " input[name=note]", "checked with the payee")
        page.click(form + " button")
        page.wait_for_selector(".flash")
        report["flash"] = page.inner_text(".flash")

        page.goto(base + "/console/audit?tool=demo.send_payment&type=decision")
        rows = page.locator("tr.record")
        report["audit"] = [rows.nth(i).inner_text() for i in range(rows.count())]
        if shots:
            page.screenshot(path=os.path.join(shots, "console-audit.png"), full_page=True)
        if rows.count() > 0:
            rows.first.locator("a").click()
            page.wait_for_selector("dl.chain")
            report["record"] = {
                "chain": page.inner_text("dl.chain"),
                "rederived": page.inner_text("p.rederived"),
            }

        page.goto(base + "/console/status")
        delegation = sc.get("delegation")
        row = f'tr[data-delegation="{delegation}"]'
        report["status"] = {
            "policy": page.inner_text("dl.policy"),
            "tokens": page.locator("tr[data-token]").count(),
            "delegation": page.inner_text(row) if delegation else None,
        }
        if shots:
            page.screenshot(path=os.path.join(shots, "console-status.png"), full_page=True)
        if delegation:
            page.click(row + " form button")
            page.wait_for_selector(".flash")
            report["delegation_revoked"] = {
                "flash": page.inner_text(".flash"),
                "status": page.inner_text(row + " td.status"),
            }

        page.goto(base + "/console/who-can?target=demo.send_payment")
        page.wait_for_selector("table.who-can")
        report["who_can"] = page.inner_text("table.who-can")
        approver.close()


def main():
    sc = json.load(sys.stdin)
    report = {}
    try:
        run(sc, report)
    except Exception:  # noqa: BLE001 - the calling test prints it
        report["fatal"] = traceback.format_exc()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
