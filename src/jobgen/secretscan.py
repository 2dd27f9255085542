"""Secrets written where they do not belong (values files, job YAML, environment variables,
inputs), found by name and by value as secret scanners find them (gitleaks' and detect-secrets'
patterns for the credentials Azure ML users hold). A finding says what kind of secret it looks
like and where; it never repeats the secret.

Rendered YAML is committed to git, printed in logs, shown in Azure ML studio and sent in the
job's REST body: a secret there is a leaked secret. Jobs read secrets at run time from Azure Key
Vault or a workspace connection, with the job's managed identity.
"""

from __future__ import annotations

import re
from typing import Any

HINT = ("keep it in Azure Key Vault or a workspace connection and read it at run time with the job's "
        "identity; never write a secret into values or job YAML (they are committed, logged and sent to Azure)")

# Parts of a name that mean it holds a secret (TOKENIZERS_PARALLELISM and GIT_AUTHOR_NAME do not).
SECRET_WORDS = {"KEY", "KEYS", "APIKEY", "PASS", "PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "SECRETS", "TOKEN",
                "TOKENS", "CREDENTIAL", "CREDENTIALS", "CREDS", "AUTH", "OAUTH", "AUTHORIZATION", "SAS", "PAT",
                "CONNSTR", "CONNECTIONSTRING"}
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

# (what it looks like, pattern): well-known formats, so that a value is flagged whatever its name.
VALUE_PATTERNS = [
    ("a PEM private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("a JSON Web Token (an access token)", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("an Azure storage account key (AccountKey=)", re.compile(r"AccountKey=[A-Za-z0-9+/]{20,}={0,2}", re.I)),
    ("an Azure shared access key (SharedAccessKey=)", re.compile(r"SharedAccessKey=[A-Za-z0-9+/]{20,}={0,2}", re.I)),
    ("a shared access signature (SAS: sig=)", re.compile(r"(?:^|[?&;])sig=[A-Za-z0-9%+/]{16,}", re.I)),
    ("an Azure AD client secret", re.compile(r"(?:^|[^A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"
                                             r"(?:$|[^A-Za-z0-9_~.-])")),
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("an OpenAI API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a password in a URL (user:password@host)", re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?!\$)[^/\s@'\"]+@[^\s/]",
                                                            re.I)),
]


def name_parts(name: str) -> list[str]:
    """MY_KEY -> [MY, KEY]; storageAccountKey -> [STORAGE, ACCOUNT, KEY]; OAUTH2_TOKEN -> [OAUTH, 2, TOKEN]."""
    parts: list[str] = []
    for chunk in re.split(r"[^A-Za-z0-9]+", str(name)):
        parts.extend(p.upper() for p in _PART.findall(chunk))
    return parts


# For inputs, a KEY must say what kind of key: ML inputs are full of partition_keys and sort_key.
QUALIFIED_KEYS = {"API", "ACCESS", "ACCOUNT", "PRIVATE", "SECRET", "STORAGE", "SHARED", "MASTER", "SIGNING",
                  "ENCRYPTION", "SUBSCRIPTION", "PRIMARY", "SECONDARY", "AUTH", "SAS", "SERVICE", "CLIENT"}


def secret_name(name: Any, what: str = "environment variable") -> bool:
    """Whether a variable or input name says it holds a secret (PWD alone is the working folder;
    an input's KEY counts only after a word that makes it a credential: api_key, storage_key)."""
    parts = name_parts(str(name))
    if parts == ["PWD"]:
        return False
    if what == "input":
        parts = [p for i, p in enumerate(parts) if p not in ("KEY", "KEYS") or (i and parts[i - 1] in QUALIFIED_KEYS)]
        if not parts:
            return False
    joined = "".join(parts)
    return (any(p in SECRET_WORDS for p in parts) or (len(parts) > 1 and "PWD" in parts)
            or "CONNECTIONSTRING" in joined or "PRIVATEKEY" in joined
            or any("AUTH" in p and not p.startswith(("AUTHOR", "AUTHENTIC")) for p in parts))


def secret_value(value: Any) -> str | None:
    """What kind of secret ``value`` looks like, or None."""
    if not isinstance(value, str) or len(value) < 16:
        return None
    for kind, pattern in VALUE_PATTERNS:
        if pattern.search(value):
            return kind
    return None


def _harmless(value: Any) -> bool:
    """Values a secret-looking name may hold: nothing, a flag, a number, a reference resolved later."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    text = str(value).strip()
    return (text == "" or text.lower() in ("true", "false", "yes", "no", "none", "null")
            or bool(re.fullmatch(r"\$\{\{[^}]*\}\}|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", text)))


def name_finding(name: Any, value: Any, what: str = "environment variable") -> str | None:
    """The finding for a secret-looking *name* with a value written beside it, or None."""
    if name is not None and secret_name(name, what) and not _harmless(value):
        return f"{what} '{name}' looks like a secret (by its name) and has a value written here"
    return None


def finding(name: Any, value: Any, what: str = "environment variable") -> str | None:
    """The finding for ``name: value`` (an environment variable or an input), by value first,
    then by name, or None. It names the key and the kind of secret, never the value."""
    kind = secret_value(value)
    if kind is not None:
        return f"{what} '{name}' holds what looks like {kind}"
    return name_finding(name, value, what)


def scan(data: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, kind) of every string in ``data`` that looks like a secret by its value."""
    found: list[tuple[tuple, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(scan(value, path + (key,)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(scan(value, path + (i,)))
    else:
        kind = secret_value(data)
        if kind is not None:
            found.append((path, kind))
    return found
