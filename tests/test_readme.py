"""The README's curl walk-through, run verbatim against a live ``orgmirror serve``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.service import OrgmirrorServer, clean_env

README = Path(__file__).resolve().parent.parent / "README.md"
EXPECTED = re.compile(r"#\s*→\s*(\d{3})\s*$")


def walkthrough() -> str:
    text = README.read_text()
    section = text.split("<!-- walkthrough:start -->", 1)[1].split("<!-- walkthrough:end -->")[0]
    return section.split("```bash", 1)[1].split("```", 1)[0]


def test_readme_walkthrough_runs_verbatim(tmp_path: Path) -> None:
    script = walkthrough()
    expected = [m.group(1) for line in script.splitlines() if (m := EXPECTED.search(line))]
    assert len(expected) >= 14, "the walk-through lost its expected status codes"
    # The README runs from the checkout, where `make run` created .venv.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = clean_env(tmp_path, ORGMIRROR_SSRF_ALLOWED_HOSTS="127.0.0.1")
    with OrgmirrorServer(cwd=tmp_path, env=env, log_dir=tmp_path) as server:
        script = script.replace("127.0.0.1:8080", f"127.0.0.1:{server.port}")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    codes = re.findall(r"(\d{3})$", result.stdout, flags=re.MULTILINE)
    assert codes == expected, result.stdout
    assert "Harbor12345" not in result.stdout
    assert "robot-secret" not in result.stdout
