from django import template

register = template.Library()


@register.filter
def thousands(value):
    """12345 → 12,345 (locale-neutral, as operators read fleet counts)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None
