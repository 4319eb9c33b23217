"""Bodies of the organization and robot-account endpoints (SPEC §3.2, §3.3)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from app.schemas.common import ApiDateTime, RequestModel, ResponseModel

ORG_NAME_PATTERN = r"^[a-z0-9_-]{2,255}$"
ROBOT_SHORTNAME_PATTERN = r"^[a-z0-9_]{1,254}$"


class OrganizationCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"example": {"name": "myorg"}})

    name: str = Field(
        pattern=ORG_NAME_PATTERN,
        description="2-255 characters: lowercase letters, digits, '_' and '-'.",
    )


class OrganizationRead(ResponseModel):
    name: str
    creation_date: ApiDateTime
    admins: list[str]


class RobotPut(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {"description": "pushes mirrored images", "token": "robot-password"}
        }
    )

    description: str = Field(default="", max_length=1024)
    token: str = Field(
        min_length=1,
        max_length=4096,
        description="The credential this robot uses to push into the target registry.",
    )


class RobotRead(ResponseModel):
    name: str = Field(description="orgname+shortname")
    description: str
    created: ApiDateTime


class RobotList(ResponseModel):
    robots: list[RobotRead]
