"""The login page: a small self-contained HTML form (no scripts, no external assets)."""

from __future__ import annotations

import html

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · mcp-code-executor</title>
<style>
  body {{margin: 0; min-height: 100vh; display: grid; place-items: center;
        font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
        background: #f4f5f7; color: #1f2328;}}
  main {{width: min(22rem, 90vw); background: #fff; border: 1px solid #d0d7de;
        border-radius: 10px; padding: 1.75rem 2rem; box-shadow: 0 1px 3px #0001;}}
  h1 {{font-size: 1.25rem; margin: 0 0 1.25rem;}}
  label {{display: block; font-weight: 600; margin: 0.75rem 0 0.25rem;}}
  input {{box-sizing: border-box; width: 100%; padding: 0.5rem 0.6rem; font: inherit;
         border: 1px solid #afb8c1; border-radius: 6px;}}
  input:focus {{outline: 2px solid #6e8efb; border-color: transparent;}}
  button {{margin-top: 1.25rem; width: 100%; padding: 0.55rem; font: inherit; font-weight: 600;
          color: #fff; background: #4f6ef7; border: 0; border-radius: 6px; cursor: pointer;}}
  button:hover {{background: #3b5be0;}}
  .error {{background: #ffebe9; border: 1px solid #ff818266; color: #82071e;
          border-radius: 6px; padding: 0.5rem 0.75rem; margin: 0 0 0.5rem;}}
  .note {{background: #ddf4ff; border: 1px solid #54aeff66; border-radius: 6px;
         padding: 0.5rem 0.75rem; margin: 0 0 0.5rem;}}
</style>
</head>
<body>
<main>
<h1>mcp-code-executor</h1>
{message}
<form method="post" action="{action}">
  <input type="hidden" name="next" value="{next}">
  <label for="username">User</label>
  <input id="username" name="username" autocomplete="username" required{user_focus}
         value="{username}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password"
         required{password_focus}>
  <button type="submit">Log in</button>
</form>
</main>
</body>
</html>
"""
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def render(
    *, action: str, next_url: str, username: str = "", error: str = "", note: str = ""
) -> str:
    """The page with an optional error (role=alert) or note (role=status); all text escaped."""
    block = ""
    if error:
        block = f'<p class="error" role="alert">{html.escape(error)}</p>'
    elif note:
        block = f'<p class="note" role="status">{html.escape(note)}</p>'
    return _PAGE.format(
        message=block,
        action=html.escape(action),
        next=html.escape(next_url),
        user_focus="" if username else " autofocus",
        password_focus=" autofocus" if username else "",
        username=html.escape(username),
    )
