"""Template tags for triage facts shown on other pages (the pack page): the latest bench
result and the second-life warranty."""

from django import template

register = template.Library()


@register.inclusion_tag("web/triage_pack_evidence.html")
def triage_pack_evidence(pack):
    from battloop.triage.models import BenchResult
    from battloop.triage.warranty import current_redeployments, warranty_status

    redeployments = current_redeployments([pack])
    return {"bench": BenchResult.objects.filter(pack=pack).first(),
            "warranty": warranty_status(redeployments[0]) if redeployments else None}
