"""Every setting is documented once, with its real default: the settings class in
README's Configuration table, the per-node limits in docs/protocol.md's Limits table."""

from __future__ import annotations

import re
from pathlib import Path

from api.limits import Limits
from ops.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def _table_rows(markdown: str, heading: str) -> list[str]:
    section = markdown.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append(line)
    return rows[2:]  # without the header and its --- line


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else f"HFTX_{field.upper()}"


def test_readme_configuration_table_lists_every_setting_once() -> None:
    rows = _table_rows((REPO / "README.md").read_text(), "## Configuration")
    documented = [name for row in rows for name in re.findall(r"`([A-Z_]+)`", row.split("|")[1])]
    assert len(documented) == len(set(documented))
    names = {_env_name(f) for f in Settings.model_fields}
    assert names <= set(documented), names - set(documented)


def test_readme_configuration_defaults_are_the_settings_defaults() -> None:
    rows = _table_rows((REPO / "README.md").read_text(), "## Configuration")
    defaults = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        values = re.findall(r"`([^`]*)`", cells[1])
        if len(values) == len(names):  # literal defaults, not "embedded Valkey"
            defaults.update(zip(names, values, strict=True))
    by_name = {_env_name(f): f for f in Settings.model_fields}
    checked = 0
    for name, shown in defaults.items():
        field = by_name.get(name)
        if field is None:
            continue
        real = Settings.model_fields[field].default
        if name == "HFTX_DATA_DIR":
            assert Path(shown) == Path(real)
        else:
            assert shown == str(real).lower() if isinstance(real, bool) else shown == str(real)
        checked += 1
    assert checked >= 6  # PORT, HOST, DATA_DIR, DEMO, LOG_LEVEL, ports, fsync


def test_protocol_limits_table_lists_every_limit_once_with_its_default() -> None:
    text = (REPO / "docs" / "protocol.md").read_text()
    rows = _table_rows(text, "## Limits")
    joined = "\n".join(rows)
    limits = Limits()
    for name in Limits.__dataclass_fields__:
        var = f"HFTX_{name.upper()}"
        assert joined.count(f"`{var}`") == 1, var
    # the defaults as the table words them
    assert "64 KiB" in joined and limits.ws_max_frame == limits.http_max_body == 64 * 1024
    assert f"{int(limits.user_rate)}/s, bursts of {int(limits.user_burst)}" in joined
    assert f"{int(limits.ip_rate)}/s, bursts of {int(limits.ip_burst)}" in joined
    assert f"more than {limits.flood_refusals} refused" in joined
    assert f"{int(limits.signup_rate)}/s, bursts of {int(limits.signup_burst)}" in joined
    assert (
        f"{limits.login_failures_per_email} per e-mail and IP, "
        f"{limits.login_failures_per_ip} per IP" in joined
    )
    assert f"per {limits.login_window // 60} min" in joined
    assert f"{limits.ws_queue_msgs} messages or {limits.ws_queue_bytes // 2**20} MiB" in joined
    assert f"| {limits.ws_conns_per_user}; the next" in joined
    assert f"| {limits.ws_conns_total:,}".replace(",", " ") in joined
    assert f"| {int(limits.ws_auth_timeout)} s, then close 4401" in joined
    assert f"| {int(limits.request_timeout)} s, then 503" in joined
    assert f"| {int(limits.history_wait)} s, then answers" in joined
    assert f"| {int(limits.settle_wait)} s (`HFTX_SETTLE_WAIT`)" in joined
