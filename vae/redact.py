"""Hide secrets in anything we print or write: one rule for every URL and message.

    redact("postgresql://vae:hunter2@db/optuna")          # 'postgresql://vae:***@db/optuna'
    redact("cannot use sqlite:///x?password=hunter2: ...")  # '... sqlite:///x?password=***: ...'

Connection strings carry passwords (userinfo `user:password@`, or query parameters such as
`?password=` or `?token=`), and they reach messages, MLflow params and tags, config.json and report
pages, often inside a library's own error text. `redact` works on any text: it masks the password
of every URL in it and every password-like `name=value`, so a message can be passed through whole.
Written here rather than taken from a library because the libraries at hand (SQLAlchemy's
`URL.render_as_string`, urllib) parse one well-formed URL, not a URL inside an error message, and
none masks query parameters.
"""

from __future__ import annotations

import re

MASK = "***"
# query parameters (and libpq key=value pairs) whose value is a secret: password, sslpassword,
# passwd, pwd, secret, client_secret, token, access_token, key, api_key, aws_secret_access_key, ...
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|key)[A-Za-z0-9_.-]*"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)]")  # a closing ':' or ')' is the message's
_USERINFO = re.compile(r"^(?P<scheme>[^:]+://)(?P<user>[^:/@?#]*):(?P<password>.*)@")
_PARAM = re.compile(rf"(?i)(?P<lead>^|[&;])(?P<name>{_SECRET_NAME})=[^&;#]*")
# outside URLs only unmistakable names, so that "--set KEY=VALUE" in a message stays readable
_WORD = re.compile(r"(?i)\b(?P<name>[A-Za-z0-9_]*(?:password|passwd|pwd|secret|token))=[^\s&;'\"]*[^\s&;'\".,:)]")


def _url(match: re.Match) -> str:
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", match.group())
    head, sep, query = url.partition("?")
    if sep:
        query = _PARAM.sub(lambda m: f"{m['lead']}{m['name']}={MASK}", query)
    return head + sep + query


def redact(text: str) -> str:
    """`text` with every password of a URL and every password-like parameter replaced by ***."""
    text = _URL.sub(_url, str(text))
    return _WORD.sub(lambda m: f"{m['name']}={MASK}", text)
