"""Repository listing, sync-now, sync-cancel and verify (SPEC §1.3, §1.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.models import AuditEvent, MirrorRepository, OrgMirrorConfig
from app.runtime import Runtime
from tests.conftest import auth
from tests.routers.test_mirror_config import assert_api_error

STATUSES = ["NEVER_RUN", "SYNC_NOW", "SYNCING", "SUCCESS", "FAIL", "CANCEL", "SKIP"]


async def _config_row(runtime: Runtime) -> OrgMirrorConfig:
    async with runtime.sessionmaker() as session:
        row = (await session.execute(select(OrgMirrorConfig))).scalar_one()
        return row


async def _add_repositories(runtime: Runtime, count: int, status_of: Any = None) -> None:
    config = await _config_row(runtime)
    async with runtime.sessionmaker() as session:
        for i in range(count):
            session.add(
                MirrorRepository(
                    config_id=config.id,
                    name=f"repo-{i:04d}",
                    sync_status=status_of(i) if status_of else "SUCCESS",
                    in_target=i % 2 == 0,
                    tags_total=3,
                    tags_copied=1,
                    tags_skipped=2,
                )
            )
        await session.commit()


async def _set_status(runtime: Runtime, status: str) -> None:
    async with runtime.sessionmaker() as session:
        row = (await session.execute(select(OrgMirrorConfig))).scalar_one()
        row.sync_status = status
        await session.commit()


async def test_listing_pages_in_name_order(
    client: httpx.AsyncClient, runtime: Runtime, mirror_url: str, config: dict[str, Any]
) -> None:
    await _add_repositories(runtime, 25)
    first = (await client.get(f"{mirror_url}/repositories?limit=10", headers=auth())).json()
    assert first["total"] == 25
    assert first["page"] == 1
    assert first["limit"] == 10
    assert first["has_next"] is True
    assert [r["name"] for r in first["repositories"]] == [f"repo-{i:04d}" for i in range(10)]
    last = (await client.get(f"{mirror_url}/repositories?limit=10&page=3", headers=auth())).json()
    assert [r["name"] for r in last["repositories"]] == [f"repo-{i:04d}" for i in range(20, 25)]
    assert last["has_next"] is False
    entry = first["repositories"][0]
    assert set(entry) == {
        "name",
        "sync_status",
        "discovery_date",
        "last_sync_date",
        "status_message",
        "quay_repository",
        "tags_total",
        "tags_copied",
        "tags_skipped",
        "tags_failed",
    }
    assert entry["quay_repository"] == "myorg/repo-0000"
    assert first["repositories"][1]["quay_repository"] is None
    assert entry["discovery_date"].endswith("Z")


async def test_listing_defaults_and_limit_cap(
    client: httpx.AsyncClient, runtime: Runtime, mirror_url: str, config: dict[str, Any]
) -> None:
    await _add_repositories(runtime, 510)
    default = (await client.get(f"{mirror_url}/repositories", headers=auth())).json()
    assert default["limit"] == 100
    assert len(default["repositories"]) == 100
    capped = (await client.get(f"{mirror_url}/repositories?limit=100000", headers=auth())).json()
    assert capped["limit"] == 500
    assert len(capped["repositories"]) == 500
    assert capped["has_next"] is True


async def test_listing_status_filter_is_case_insensitive(
    client: httpx.AsyncClient, runtime: Runtime, mirror_url: str, config: dict[str, Any]
) -> None:
    await _add_repositories(runtime, 14, status_of=lambda i: STATUSES[i % 7])
    page = (await client.get(f"{mirror_url}/repositories?status=fail", headers=auth())).json()
    assert page["total"] == 2
    assert {r["sync_status"] for r in page["repositories"]} == {"FAIL"}
    counts = (await client.get(mirror_url, headers=auth())).json()["repo_sync_status_counts"]
    assert counts == dict.fromkeys(STATUSES, 2)


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("status=BROKEN", "status: must be one of NEVER_RUN, SYNC_NOW"),
        ("page=0", "page: must be at least 1"),
        ("page=x", "page: must be an integer"),
        ("limit=0", "limit: must be at least 1"),
        ("limit=-5", "limit: must be at least 1"),
    ],
)
async def test_listing_rejects_bad_parameters(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any], query: str, needle: str
) -> None:
    response = await client.get(f"{mirror_url}/repositories?{query}", headers=auth())
    assert_api_error(response, 400, "invalid_request", needle)


async def test_listing_without_config_is_404(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.get(f"{mirror_url}/repositories", headers=auth())
    assert_api_error(response, 404, "not_found")


async def test_sync_now_queues_a_run_due_now(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    assert config["sync_start_date"] == "2030-01-01T00:00:00Z"
    response = await client.post(f"{mirror_url}/sync-now", headers=auth())
    assert response.status_code == 204
    assert response.content == b""
    got = (await client.get(mirror_url, headers=auth())).json()
    assert got["sync_status"] == "SYNC_NOW"
    due = datetime.fromisoformat(got["sync_start_date"])
    assert abs(due - datetime.now(UTC)) < timedelta(seconds=30)


async def test_sync_now_twice_is_404_unless_coalesced(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    assert (await client.post(f"{mirror_url}/sync-now", headers=auth())).status_code == 204
    again = await client.post(f"{mirror_url}/sync-now", headers=auth())
    assert_api_error(again, 404, "not_found", "already queued", "coalesce=true")
    coalesced = await client.post(f"{mirror_url}/sync-now?coalesce=true", headers=auth())
    assert coalesced.status_code == 204


async def test_sync_now_while_running_coalesces_one_follow_up(
    client: httpx.AsyncClient, runtime: Runtime, mirror_url: str, config: dict[str, Any]
) -> None:
    await _set_status(runtime, "SYNCING")
    busy = await client.post(f"{mirror_url}/sync-now", headers=auth())
    assert_api_error(busy, 404, "not_found", "already running")
    assert (await _config_row(runtime)).follow_up_requested is False
    for _ in range(2):
        ok = await client.post(f"{mirror_url}/sync-now?coalesce=true", headers=auth())
        assert ok.status_code == 204
    row = await _config_row(runtime)
    assert row.follow_up_requested is True
    assert row.sync_status == "SYNCING"


async def test_sync_now_accepted_for_disabled_config(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    await client.put(mirror_url, json={"is_enabled": False}, headers=auth())
    assert (await client.post(f"{mirror_url}/sync-now", headers=auth())).status_code == 204
    got = (await client.get(mirror_url, headers=auth())).json()
    assert got["sync_status"] == "SYNC_NOW"
    assert got["is_enabled"] is False


async def test_sync_now_without_config_is_404(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.post(f"{mirror_url}/sync-now", headers=auth())
    assert_api_error(response, 404, "not_found", "has no mirror config")


async def test_cancel_twice_is_400(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    first = await client.post(f"{mirror_url}/sync-cancel", headers=auth())
    assert first.status_code == 204
    assert first.content == b""
    assert (await client.get(mirror_url, headers=auth())).json()["sync_status"] == "CANCEL"
    second = await client.post(f"{mirror_url}/sync-cancel", headers=auth())
    assert_api_error(second, 400, "invalid_request", "already cancelled")


async def test_cancel_marks_queued_repositories_and_keeps_the_schedule(
    client: httpx.AsyncClient, runtime: Runtime, mirror_url: str, config: dict[str, Any]
) -> None:
    await client.put(
        mirror_url,
        json={"sync_start_date": "2020-01-01T00:00:00Z", "sync_interval": 3600},
        headers=auth(),
    )
    await _add_repositories(
        runtime, 6, status_of=lambda i: ["SYNC_NOW", "SYNCING", "SUCCESS"][i % 3]
    )
    await _set_status(runtime, "SYNCING")
    assert (await client.post(f"{mirror_url}/sync-cancel", headers=auth())).status_code == 204
    got = (await client.get(mirror_url, headers=auth())).json()
    assert got["repo_sync_status_counts"]["CANCEL"] == 4
    assert got["repo_sync_status_counts"]["SUCCESS"] == 2
    next_run = datetime.fromisoformat(got["sync_start_date"])
    now = datetime.now(UTC)
    assert now < next_run <= now + timedelta(hours=1)
    assert next_run.minute == 0
    assert next_run.second == 0
    listing = (await client.get(f"{mirror_url}/repositories?status=cancel", headers=auth())).json()
    assert all(r["status_message"] == "Cancelled by alice" for r in listing["repositories"])


async def test_cancel_then_sync_now_again(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    await client.post(f"{mirror_url}/sync-now", headers=auth())
    assert (await client.post(f"{mirror_url}/sync-cancel", headers=auth())).status_code == 204
    assert (await client.post(f"{mirror_url}/sync-now", headers=auth())).status_code == 204


async def test_delete_removes_tracking_rows(
    client: httpx.AsyncClient, runtime: Runtime, mirror_url: str, config: dict[str, Any]
) -> None:
    await _add_repositories(runtime, 3)
    assert (await client.delete(mirror_url, headers=auth())).status_code == 204
    async with runtime.sessionmaker() as session:
        assert (await session.execute(select(MirrorRepository))).scalars().all() == []


async def test_changes_are_audited_without_secrets(
    client: httpx.AsyncClient, runtime: Runtime, mirror_url: str, config: dict[str, Any]
) -> None:
    await client.put(
        mirror_url, json={"external_registry_password": "hunter2-secret"}, headers=auth()
    )
    await client.post(f"{mirror_url}/sync-now", headers=auth())
    await client.post(f"{mirror_url}/sync-cancel", headers=auth())
    await client.delete(mirror_url, headers=auth())
    async with runtime.sessionmaker() as session:
        events = (await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars().all()
    actions = [e.action for e in events if e.action.startswith("mirror.")]
    assert actions == [
        "mirror.create",
        "mirror.update",
        "mirror.sync_now",
        "mirror.cancel",
        "mirror.delete",
    ]
    assert all(e.actor == "alice" and e.org_name == "myorg" for e in events)
    assert "hunter2-secret" not in repr([e.details for e in events])
    assert any("external_registry_password" in str(e.details) for e in events)


async def test_verify_reports_unreachable_source(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    # The fixture config points at 127.0.0.1:8443, where nothing listens.
    response = await client.post(f"{mirror_url}/verify", headers=auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is False
    assert "Cannot connect to registry http://127.0.0.1:8443" in body["message"]


async def test_verify_without_config_is_404(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.post(f"{mirror_url}/verify", headers=auth())
    assert_api_error(response, 404, "not_found")
