"""No secret or private key in the repository: every file git would commit is scanned.

Tracked files and untracked files that are not ignored (what ``git add -A`` would add)
are read; a hit names the file, the line and the kind of secret. The patterns are
high-confidence ones (key blocks, cloud and forge token formats, a literal value for
one of the platform's own secret settings), so a hit is worth stopping CI for.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Built from parts so this file does not match itself.
_BEGIN, _END = "-----BEGIN", "-----"
SECRET_PATTERNS: dict[str, re.Pattern] = {
    "private key block": re.compile(
        _BEGIN + r" (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?" + _END
    ),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?(?!testing\b)[A-Za-z0-9/+=]{40}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    # a literal value (not ${VAR}, not empty, not a placeholder) for the platform's secret settings
    "promoflow secret setting": re.compile(
        r"\bPROMO_(?:USER_KEY_SECRET|API_TOKEN)\b['\"]?\s*[=:]\s*['\"]?(?![$<{]|['\"]|\s|$)[A-Za-z0-9_\-+/=]{12,}"
    ),
}
FORBIDDEN_NAMES = re.compile(r"(^|/)(\.user_key_secret|id_rsa|id_ed25519|\.env|[^/]+\.pem|[^/]+\.p12|[^/]+\.key)$")
# The test suite's own throwaway values are not secrets: generated per run or literally named "test".
ALLOWED_VALUES = re.compile(r"(?i)(test|example|dummy|changeme)")


def repository_files(root: Path = ROOT) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return [root / name for name in out.decode().split("\0") if name and (root / name).is_file()]


def find_secrets(files: list[Path], root: Path = ROOT) -> list[str]:
    hits = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        if FORBIDDEN_NAMES.search(relative):
            hits.append(f"{relative}: a secret's file name; keep it out of the repository (.gitignore)")
        try:
            text = path.read_text(errors="ignore")
        except OSError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for kind, pattern in SECRET_PATTERNS.items():
                match = pattern.search(line)
                if match and not ALLOWED_VALUES.search(match.group(0)):
                    hits.append(f"{relative}:{lineno}: {kind}")
    return hits


def test_no_secret_or_private_key_in_the_repository():
    try:
        files = repository_files()
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"not a git checkout ({err}): nothing to scan")
    assert len(files) > 50  # the scan really saw the tree
    assert find_secrets(files) == []


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("deploy/key.txt", _BEGIN + " RSA PRIVATE KEY" + _END + "\nMIIEow\n", "private key block"),
        ("conf.py", "AWS_KEY = 'AKIA" + "ABCDEFGHIJKLMNOP'\n", "AWS access key id"),
        ("settings.env.example", "PROMO_API" + "_TOKEN=Zq3k9vX2pL7mN4rT8wY1\n", "promoflow secret setting"),
        ("ci.yml", "token: ghp_" + "a" * 36 + "\n", "GitHub token"),
    ],
)
def test_the_scanner_finds_a_planted_secret(tmp_path, name, content, kind):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    assert find_secrets([path], root=tmp_path) == [f"{name}:1: {kind}"]


def test_the_scanner_accepts_references_and_test_values(tmp_path):
    path = tmp_path / "compose.yml"
    path.write_text(
        "PROMO_USER_KEY_SECRET: ${PROMO_USER_KEY_SECRET:?set in .env}\nPROMO_USER_KEY_SECRET=test-secret-value\n"
    )
    assert find_secrets([path], root=tmp_path) == []
    (tmp_path / ".user_key_secret").write_text("abc")
    assert find_secrets([tmp_path / ".user_key_secret"], root=tmp_path) == [
        ".user_key_secret: a secret's file name; keep it out of the repository (.gitignore)"
    ]
