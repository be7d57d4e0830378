"""The operator console: a web page served by the broker at ``/console``.

    credentials.py  login codes, session ids, CSRF tokens: random values and their hashes
    guard.py        what every console request must pass (no agent credential, session,
                    same origin, CSRF token) and the strict response headers
    html.py         escaping by default: ``fmt`` escapes every value not marked ``Safe``
    timeline.py     the audit timeline: filters, rows, the chain's verify status
    pages.py        the audit, tokens, spend, sign-in and error pages, as HTML
    approval_pages.py  held requests: the list, and one shown exactly as stored
    chart.py        the spend chart, an SVG drawn on the server
    app.py          the routes, mounted by ``vertex_tools.broker.app`` under ``/console``
    static/         one stylesheet and one small script (no build step, nothing remote)

The console never takes an agent token, and an agent token never reaches it:
a request to ``/console`` carrying one (or any ``Authorization`` or ``X-Vertex-*``
header) is refused. Operators sign in with a one-time code made by
``vertex console``; the session cookie is ``HttpOnly``, ``SameSite=Strict`` and
limited to ``Path=/console``. Only hashes of codes and session ids are stored.
Every action goes through :class:`vertex_tools.admin.Admin`, as the CLI's do, so
it leaves the same audit entry (actor ``console:<operator>``).
"""
