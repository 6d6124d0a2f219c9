"""Feedback records, their predictions and review, and CSV import jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from tenants.models import Organization, OrgOwnedModel


class Sentiment(models.TextChoices):
    NEGATIVE = "negative", "Negative"
    NEUTRAL = "neutral", "Neutral"
    POSITIVE = "positive", "Positive"


class Language(models.TextChoices):
    EN = "en", "English"
    TL = "tl", "Tagalog"
    CEB = "ceb", "Cebuano"
    OTHER = "other", "Other"


class ReviewStatus(models.TextChoices):
    NEW = "new", "New"
    REVIEWED = "reviewed", "Reviewed"
    DISMISSED = "dismissed", "Dismissed"


class ImportJob(OrgOwnedModel):
    """A CSV file being ingested in the background, resumable row by row."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    filename = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField()
    mapping = models.JSONField(default=dict)
    default_source = models.CharField(max_length=50, default="csv")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    # Rows handled so far (stored, duplicate or rejected); a resumed job starts after these.
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list)  # [{"row": n, "field": f, "reason": r}], capped
    failure = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="importjob_org_created_idx")
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"


class ImportFile(OrgOwnedModel):
    """The uploaded bytes, kept in PostgreSQL so any worker on any machine can read them."""

    job = models.OneToOneField(ImportJob, on_delete=models.CASCADE, related_name="file")
    content = models.BinaryField()

    def __str__(self) -> str:
        return f"file of import {self.job_id}"


class Feedback(OrgOwnedModel):
    # The (organization, received_at …) indexes below serve every lookup by organization, so
    # the foreign key needs no index of its own: one fewer index to update per item ingested.
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    text = models.TextField()
    source = models.CharField(max_length=50, default="api")
    # NULL, not "", so the per-org uniqueness applies only to ids that were given.
    external_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # Opaque reference to the author in the org's own systems; never shown to other orgs.
    author_ref = models.CharField(max_length=200, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=now)
    metadata = models.JSONField(default=dict, blank=True)

    sentiment = models.CharField(max_length=16, choices=Sentiment.choices)
    sentiment_scores = models.JSONField(default=dict)
    language = models.CharField(max_length=8, choices=Language.choices)
    language_score = models.FloatField()
    # NULL means "no category model": unlike "", it cannot be mistaken for a label.
    category = models.CharField(max_length=60, null=True, blank=True)  # noqa: DJ001
    category_score = models.FloatField(null=True, blank=True)
    anomaly_score = models.FloatField(default=0.0)
    flagged = models.BooleanField(default=False)
    reasons = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    model_versions = models.JSONField(default=dict)

    corrected_sentiment = models.CharField(  # noqa: DJ001 - NULL: not corrected
        max_length=16, choices=Sentiment.choices, null=True, blank=True
    )
    corrected_category = models.CharField(max_length=60, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.NEW)
    # Both links are NULL on almost every row: their indexes (fb_reviewed_by_idx below, and
    # feedback_import_row_unique, which leads with import_job) cover only the rows that have one,
    # so ingesting an item updates neither.
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    import_job = models.ForeignKey(
        ImportJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    import_row = models.PositiveIntegerField(null=True, blank=True)

    # Multilingual text: the 'simple' configuration (no stemming) treats all four alike.
    search = models.GeneratedField(
        expression=SearchVector("text", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    if TYPE_CHECKING:
        organization_id: int

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization", "external_id"],
                condition=Q(external_id__isnull=False),
                name="feedback_external_id_unique",
            ),
            # A resumed import never stores a row twice.
            models.UniqueConstraint(
                fields=["import_job", "import_row"],
                condition=Q(import_job__isnull=False),
                name="feedback_import_row_unique",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["organization", "-received_at", "-id"], name="fb_org_time_idx"),
            models.Index(
                fields=["organization", "sentiment", "-received_at"], name="fb_org_sentiment_idx"
            ),
            models.Index(
                fields=["organization", "-received_at"],
                condition=Q(flagged=True),
                name="fb_org_flagged_idx",
            ),
            GinIndex(fields=["search"], name="fb_search_idx"),
            models.Index(
                fields=["reviewed_by"],
                condition=Q(reviewed_by__isnull=False),
                name="fb_reviewed_by_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.text[:60]

    @property
    def effective_sentiment(self) -> str:
        return self.corrected_sentiment or self.sentiment

    @property
    def effective_category(self) -> str | None:
        return self.corrected_category or self.category


class ReviewEvent(OrgOwnedModel):
    """Who changed a feedback's review fields, when, and from what to what."""

    feedback = models.ForeignKey(Feedback, on_delete=models.CASCADE, related_name="review_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    changes = models.JSONField()  # {"field": [old, new]}
    created_at = models.DateTimeField(default=now)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["feedback", "-created_at"], name="review_fb_idx")]

    def __str__(self) -> str:
        return f"review of {self.feedback_id}"


class UsagePeriod(OrgOwnedModel):
    """Items an org ingested in a calendar month (UTC), checked against its plan's quota."""

    month = models.DateField()
    items = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["organization", "month"], name="usage_month_unique")
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.items}"
