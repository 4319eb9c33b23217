"""ORM classes; importing this package registers every table on ``Base.metadata``."""

from app.models.audit import AuditEvent
from app.models.mirror import MirroredTag, MirrorRepository, OrgMirrorConfig
from app.models.organization import OrgAdmin, Organization, RobotAccount

__all__ = [
    "AuditEvent",
    "MirrorRepository",
    "MirroredTag",
    "OrgAdmin",
    "OrgMirrorConfig",
    "Organization",
    "RobotAccount",
]
