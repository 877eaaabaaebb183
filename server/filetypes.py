"""How stored files are served: a type the browser cannot run, and never sniffed.

Outputs, uploads and user files are written by whoever can reach the server; served as
`text/html` (a `.html` name, or an image/HTML polyglot) they would run script in the server's
origin. Images, video and audio are shown inline under their own type; everything else is an
attachment with a type that never executes, and `nosniff` keeps browsers from guessing.
"""

from __future__ import annotations

import mimetypes

# Inline types: media a browser only displays. SVG is an image that can carry script: excluded.
_INLINE = ("image/", "video/", "audio/")
_UNSAFE_INLINE = {"image/svg+xml"}
# Attachments keep a descriptive type when it cannot run: the editor fetches JSON workflows,
# and its page links the user's stylesheet (/userdata/user.css), which a browser applies only
# when it is served as text/css under `nosniff` (a stylesheet runs no script).
_PLAIN = {"application/json": "application/json", "text/css": "text/css"}


def served_as(name: str) -> tuple[str, dict[str, str]]:
    """The media type and extra headers to serve a stored file named `name` with."""
    guessed = mimetypes.guess_type(name)[0] or ""
    headers = {"X-Content-Type-Options": "nosniff"}
    if guessed.startswith(_INLINE) and guessed not in _UNSAFE_INLINE:
        return guessed, headers
    headers["Content-Disposition"] = "attachment"
    return _PLAIN.get(guessed, "application/octet-stream"), headers
