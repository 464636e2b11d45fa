"""The read models the service keeps, in the order they are caught up."""

from __future__ import annotations

from projections.activity import ActivityProjection
from projections.audit import AuditProjection
from projections.commits import CommitsProjection
from projections.delivery import DeliveryProjection
from projections.directory import DirectoryProjection
from projections.files import FilesProjection
from projections.issues import IssuesProjection
from projections.projection import Projection
from projections.releases import ReleasesProjection
from projections.timeline import TimelineProjection


def all_projections() -> list[Projection]:
    """Return one instance of every registered read model.

    A new read model is registered by adding it here. `release-ledger
    migrate` then creates its tables and the projector fills it from
    position zero. `release-ledger projections rebuild NAME` can instead
    fill it by replay before readers use it. docs/read-models.md walks
    through adding one.
    """
    return [
        DirectoryProjection(),
        ReleasesProjection(),
        ActivityProjection(),
        IssuesProjection(),
        FilesProjection(),
        AuditProjection(),
        TimelineProjection(),
        CommitsProjection(),
        DeliveryProjection(),
    ]
