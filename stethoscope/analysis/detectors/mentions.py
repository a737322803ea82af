"""Services named in another service's new or rising error logs.

Where a failure is noticed is often not where it is: a worker logs "no payment reference" when
the payment service returned something wrong, a gateway logs "catalog timed out". When a
service's log findings name another known service, that service is suspected too, a little
more strongly than the one that merely noticed: the log says where to look.
"""

from __future__ import annotations

import re
from functools import cache

from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.detectors.logs import LogErrorDetector, NewTemplateDetector
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register

__all__ = ["MentionDetector"]

# Being named is worth a bit more than noticing: the message points past the one who wrote it.
NAMED_WEIGHT = 1.25
# Generic words of service names, so "food" in a message finds "food-service".
_AFFIXES = re.compile(r"[ _-]?(service|svc|server|api|app)$")
MIN_NAME = 4


@cache
def _pattern(service: str) -> re.Pattern[str] | None:
    """A word-boundary pattern for a service name and its short form, spelled with - _ or space."""
    names = {service.lower(), _AFFIXES.sub("", service.lower())}
    usable = [
        "[ _-]".join(re.escape(word) for word in re.split(r"[ _-]+", name))
        for name in names
        if len(name) >= MIN_NAME
    ]
    if not usable:
        return None
    # A path segment ("/api/cart/42") names a resource, not a service; a host ("//cart") does.
    return re.compile(r"(?<![\w-])(?<![^/]/)(" + "|".join(usable) + r")(?![\w-])", re.IGNORECASE)


@register
class MentionDetector:
    """Services that other services' new or rising error logs name."""

    name = "named-in-logs"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        services = context.services
        findings = []
        for source in [*LogErrorDetector().detect(context), *NewTemplateDetector().detect(context)]:
            lines = " ".join(item.summary for item in source.evidence)
            for named in sorted(services - {source.service}):
                pattern = _pattern(named)
                if pattern is None or not pattern.search(lines):
                    continue
                findings.append(
                    Finding(
                        kind=self.name,
                        service=named,
                        instance=None,
                        peer=source.service,
                        severity=source.severity,
                        start_ns=source.start_ns,
                        summary=f"named in {source.service}'s logs: {source.summary}",
                        score=source.score * NAMED_WEIGHT,
                        evidence=(
                            Evidence(
                                kind="log-mention",
                                summary=source.evidence[0].summary if source.evidence else "",
                                data={"logged_by": source.service, "finding": source.kind},
                            ),
                        ),
                    )
                )
        return findings
